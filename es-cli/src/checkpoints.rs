//! `es projections` and `es projections reset`: the saved checkpoints of projections and
//! process managers, with their lag (a partitioned projection's partitions under it).

use chrono::{DateTime, Utc};
use es_core::projection::CheckpointName;
use es_core::store::{CheckpointStore, Store};
use es_stores::OpenedStore;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, StoreContext};
use crate::inspect::events_after;
use crate::output::table;
use crate::partitions;

/// One saved checkpoint (of a projection or a process manager) and how far it is behind.
#[derive(Serialize)]
pub(crate) struct ProjectionRow {
    /// The checkpoint's name (a process manager's starts with `process:`).
    pub(crate) name: String,
    /// `projection` or `process manager`.
    pub(crate) kind: &'static str,
    /// The last position it processed.
    pub(crate) position: u64,
    /// How many events come after it.
    pub(crate) lag: u64,
    /// The time between the timestamp of the event at its position (the first event when it
    /// processed none) and the newest event's; 0 when it is caught up, absent on an empty log.
    pub(crate) lag_seconds: Option<f64>,
    /// The size of its saved state, when it saved one.
    pub(crate) state_bytes: Option<usize>,
    /// For a partitioned projection's own row, how many partitions it has (its rows
    /// `name#i/n`, kind `partition`, follow it; it shows the lowest position and the largest
    /// lag of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partitions: Option<u32>,
}

/// The timestamp of the first event at or after `position`.
async fn timestamp_at(store: &dyn Store, position: u64) -> CliResult<Option<DateTime<Utc>>> {
    let page = store
        .read_all(position.max(1), 1)
        .await
        .doing("reading the log")?;
    Ok(page.first().map(|e| e.timestamp))
}

/// Every saved checkpoint with its lag, and the head position.
pub(crate) async fn projection_rows(store: &OpenedStore) -> CliResult<(Vec<ProjectionRow>, u64)> {
    let es = store.store();
    let names = store
        .checkpoint_names()
        .await
        .doing("listing checkpoints")?;
    let head = es.head_position().await.doing("reading the head")?;
    let newest = if head == 0 {
        None
    } else {
        timestamp_at(&*es, head).await?
    };
    let mut rows: Vec<ProjectionRow> = Vec::with_capacity(names.len());
    let mut counts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for name in names {
        let projection = CheckpointName::parse(&name).projection().to_owned();
        let current = match counts.get(&projection) {
            Some(n) => *n,
            None => {
                let n = partitions::count(store, &projection).await?;
                counts.insert(projection.clone(), n);
                n
            }
        };
        let listed = partitions::classify(&name, current);
        if matches!(listed, partitions::Listed::Marker) {
            continue;
        }
        let Some(checkpoint) = es
            .load(&name)
            .await
            .doing(&format!("loading checkpoint {name:?}"))?
        else {
            continue;
        };
        let lag = events_after(&*es, checkpoint.position)
            .await
            .doing("counting events")?;
        let lag_seconds = match newest {
            Some(_) if lag == 0 => Some(0.0),
            Some(newest) => timestamp_at(&*es, checkpoint.position)
                .await?
                .map(|at| (newest - at).num_milliseconds().max(0) as f64 / 1000.0),
            None => None,
        };
        let kind = match listed {
            partitions::Listed::Partition => "partition",
            partitions::Listed::Stale => "stale (another number of partitions)",
            _ if name.starts_with(es_core::process::CHECKPOINT_PREFIX) => "process manager",
            _ => "projection",
        };
        rows.push(ProjectionRow {
            name,
            kind,
            position: checkpoint.position,
            lag,
            lag_seconds,
            state_bytes: checkpoint.state.as_ref().map(Vec::len),
            partitions: None,
        });
    }
    Ok((with_partitioned_rows(rows, &counts), head))
}

/// `rows` with a row for each partitioned projection, before its partitions' rows: the
/// lowest position and the largest lag of them.
fn with_partitioned_rows(
    rows: Vec<ProjectionRow>,
    counts: &std::collections::HashMap<String, u32>,
) -> Vec<ProjectionRow> {
    let mut out: Vec<ProjectionRow> = Vec::with_capacity(rows.len());
    for row in rows {
        if row.kind == "partition" {
            let projection = CheckpointName::parse(&row.name).projection().to_owned();
            match out
                .iter_mut()
                .find(|r| r.partitions.is_some() && r.name == projection)
            {
                Some(own) => {
                    own.position = own.position.min(row.position);
                    own.lag = own.lag.max(row.lag);
                    own.lag_seconds = match (own.lag_seconds, row.lag_seconds) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    own.state_bytes = match (own.state_bytes, row.state_bytes) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                }
                None => out.push(ProjectionRow {
                    name: projection.clone(),
                    kind: if projection.starts_with(es_core::process::CHECKPOINT_PREFIX) {
                        "process manager"
                    } else {
                        "projection"
                    },
                    position: row.position,
                    lag: row.lag,
                    lag_seconds: row.lag_seconds,
                    state_bytes: row.state_bytes,
                    partitions: counts.get(&projection).copied(),
                }),
            }
        }
        out.push(row);
    }
    out
}

/// `es projections`.
pub(crate) async fn projections(store: &OpenedStore, ctx: &mut Ctx) -> CliResult<u8> {
    let (rows, head) = projection_rows(store).await?;
    if ctx.json {
        for row in &rows {
            ctx.out.json(row)?;
        }
        return Ok(EXIT_OK);
    }
    let mut t = table(&["projection", "position", "lag (events)", "lag (s)", "state"]);
    for row in &rows {
        let name = match (row.partitions, row.kind) {
            (Some(n), _) => format!("{} ({n} partitions)", row.name),
            (None, "partition") => format!("  {}", row.name),
            (None, "projection" | "process manager") => row.name.clone(),
            (None, kind) => format!("{} [{kind}]", row.name),
        };
        t.add_row(vec![
            name,
            row.position.to_string(),
            row.lag.to_string(),
            row.lag_seconds
                .map_or_else(String::new, |s| format!("{s:.3}")),
            row.state_bytes
                .map_or_else(|| "none".to_owned(), |n| format!("{n} bytes")),
        ]);
    }
    ctx.out.line(t)?;
    ctx.out.line(format!(
        "{} projections; head position {head}",
        rows.iter()
            .filter(|r| matches!(r.kind, "projection" | "process manager"))
            .count()
    ))?;
    Ok(EXIT_OK)
}

/// `es projections reset NAME --yes`.
pub(crate) async fn reset_projection(
    store: &OpenedStore,
    ctx: &mut Ctx,
    name: &str,
    yes: bool,
) -> CliResult<u8> {
    let parts = partitions::checkpoints_of(store, name).await?;
    if parts.len() > 1 {
        let mut code = EXIT_OK;
        for part in parts {
            code = Box::pin(reset_projection(store, ctx, &part, yes)).await?;
        }
        return Ok(code);
    }
    let es = store.store();
    let Some(checkpoint) = es
        .load(name)
        .await
        .doing(&format!("loading checkpoint {name:?}"))?
    else {
        let names = store
            .checkpoint_names()
            .await
            .doing("listing checkpoints")?;
        return Err(CliError::new(format!(
            "no projection named {name:?} has a checkpoint in this store (those that have: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    if !yes {
        return Err(CliError::new(format!(
            "this resets projection {name:?} from position {} to 0 and drops its saved state, \
             so its runner rebuilds it from the start of the log; stop the program running it \
             first, then rerun with --yes",
            checkpoint.position
        )));
    }
    CheckpointStore::save(&*es, name, 0, None)
        .await
        .doing(&format!("resetting checkpoint {name:?}"))?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "name": name,
            "previous_position": checkpoint.position,
            "position": 0,
        }))?;
    } else {
        ctx.out.line(format!(
            "projection {name:?} reset: position {} -> 0, state dropped",
            checkpoint.position
        ))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod partition_rows {
    use super::*;

    fn row(name: &str, kind: &'static str, position: u64, lag: u64) -> ProjectionRow {
        ProjectionRow {
            name: name.to_owned(),
            kind,
            position,
            lag,
            lag_seconds: None,
            state_bytes: Some(2),
            partitions: None,
        }
    }

    #[test]
    fn a_partitioned_projection_gets_a_row_before_its_partitions() {
        let counts = [("p".to_owned(), 2)].into_iter().collect();
        let rows = with_partitioned_rows(
            vec![
                row("p#0/2", "partition", 5, 1),
                row("p#1/2", "partition", 3, 3),
            ],
            &counts,
        );
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["p", "p#0/2", "p#1/2"]);
        assert_eq!((rows[0].position, rows[0].lag), (3, 3));
        assert_eq!(rows[0].partitions, Some(2));
        assert_eq!(rows[0].state_bytes, Some(4));
    }
}
