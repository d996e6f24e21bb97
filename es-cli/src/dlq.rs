//! `es dlq list|retry|skip`: the dead letters of projections run under `ErrorPolicy::Park`,
//! read from and written to their checkpoints.
//!
//! A running projection keeps its dead letters in memory and saves them with every checkpoint,
//! so an edit made beside it would be overwritten (or would undo its work). `retry` and `skip`
//! therefore edit a checkpoint only while no runner of it runs: an embedded store (file, LMDB)
//! that this command could open is open in no other process, and on PostgreSQL the command
//! holds the runner's lease (the one a kernel's runner takes) for the edit, refusing when a
//! runner holds it. The CLI cannot run a projection's handlers: `retry` marks the key's
//! parked events, and the runner re-runs them in order when it next starts.
//!
//! A partitioned projection is named as a whole: its partitions' dead letters are listed
//! together, and a retry or skip edits the partition that holds the key.

use es_core::projection::{CheckpointName, DeadLetter, dead_letters_in, request_retry_in, skip_in};
use es_core::store::{Checkpoint, CheckpointStore, Lease};
use es_stores::OpenedStore;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, StoreContext};
use crate::output::table;
use crate::partitions;

/// One dead letter of one projection, as listed.
#[derive(Serialize)]
struct Row<'a> {
    projection: &'a str,
    #[serde(flatten)]
    letter: &'a DeadLetter,
}

/// The checkpoint of projection `name`; an error naming those that exist when it has none.
async fn checkpoint(store: &OpenedStore, name: &str) -> CliResult<Checkpoint> {
    let es = store.store();
    if let Some(checkpoint) = es
        .load(name)
        .await
        .doing(&format!("loading checkpoint {name:?}"))?
    {
        return Ok(checkpoint);
    }
    let names = store
        .checkpoint_names()
        .await
        .doing("listing checkpoints")?;
    Err(CliError::new(format!(
        "no projection named {name:?} has a checkpoint in this store (those that have: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )))
}

/// The dead letters of a checkpoint, or an error naming the projection.
fn letters_of(name: &str, checkpoint: &Checkpoint) -> CliResult<Vec<DeadLetter>> {
    dead_letters_in(checkpoint)
        .map_err(|e| CliError::new(format!("reading the dead letters of {name:?}: {e}")))
}

/// The dead letters of projection `name`, every partition's when it is partitioned, by
/// position (an error when it has no checkpoint).
pub(crate) async fn letters(store: &OpenedStore, name: &str) -> CliResult<Vec<DeadLetter>> {
    let parts = partitions::checkpoints_of(store, name).await?;
    if let [only] = parts.as_slice() {
        let checkpoint = checkpoint(store, only).await?;
        return letters_of(name, &checkpoint);
    }
    let es = store.store();
    let mut letters = Vec::new();
    for part in &parts {
        if let Some(checkpoint) = es
            .load(part)
            .await
            .doing(&format!("loading checkpoint {part:?}"))?
        {
            letters.extend(letters_of(part, &checkpoint)?);
        }
    }
    letters.sort_by_key(|l| l.position);
    Ok(letters)
}

/// The checkpoint of projection `name` that holds a parked event of `key` (at `position`,
/// when given): its own, or the partition's that does.
async fn holding(
    store: &OpenedStore,
    name: &str,
    key: &str,
    position: Option<u64>,
) -> CliResult<String> {
    let parts = partitions::checkpoints_of(store, name).await?;
    if parts.len() == 1 {
        return Ok(name.to_owned());
    }
    let es = store.store();
    for part in parts {
        let Some(checkpoint) = es
            .load(&part)
            .await
            .doing(&format!("loading checkpoint {part:?}"))?
        else {
            continue;
        };
        let found = letters_of(&part, &checkpoint)?
            .iter()
            .any(|l| l.key == key && l.is_parked() && position.is_none_or(|at| l.position == at));
        if found {
            return Ok(part);
        }
    }
    Err(CliError::new(format!(
        "no event of {key:?} is parked in projection {name:?} (see `es dlq list {name}`)"
    )))
}

/// `es dlq list [NAME]`.
pub(crate) async fn list(store: &OpenedStore, ctx: &mut Ctx, name: Option<&str>) -> CliResult<u8> {
    let mut found: Vec<(String, Vec<DeadLetter>)> = Vec::new();
    match name {
        Some(name) => found.push((name.to_owned(), letters(store, name).await?)),
        None => {
            let es = store.store();
            let names = store
                .checkpoint_names()
                .await
                .doing("listing checkpoints")?;
            for name in names {
                // Partitions are listed under their projection, a stale one not at all.
                let projection = CheckpointName::parse(&name).projection().to_owned();
                let current = partitions::count(store, &projection).await?;
                if !matches!(
                    partitions::classify(&name, current),
                    partitions::Listed::Plain | partitions::Listed::Partition
                ) {
                    continue;
                }
                if let Some(checkpoint) = es
                    .load(&name)
                    .await
                    .doing(&format!("loading checkpoint {name:?}"))?
                {
                    let letters = letters_of(&name, &checkpoint)?;
                    if letters.is_empty() {
                        continue;
                    }
                    match found.iter_mut().find(|(p, _)| *p == projection) {
                        Some((_, all)) => {
                            all.extend(letters);
                            all.sort_by_key(|l| l.position);
                        }
                        None => found.push((projection, letters)),
                    }
                }
            }
        }
    }
    if ctx.json {
        for (projection, letters) in &found {
            for letter in letters {
                ctx.out.json(&Row { projection, letter })?;
            }
        }
        return Ok(EXIT_OK);
    }
    let mut t = table(&["projection", "key", "position", "type", "status", "error"]);
    let mut parked = 0;
    for (projection, letters) in &found {
        for letter in letters {
            let status = match (&letter.skipped, letter.retry_requested) {
                (Some(reason), _) => format!("skipped: {reason}"),
                (None, true) => "parked, retry requested".to_owned(),
                (None, false) => {
                    parked += 1;
                    "parked".to_owned()
                }
            };
            t.add_row(vec![
                projection.clone(),
                letter.key.clone(),
                letter.position.to_string(),
                letter.event_type.clone(),
                status,
                letter.error.clone(),
            ]);
        }
    }
    ctx.out.line(t)?;
    ctx.out.line(format!(
        "{} dead letters, {parked} parked without a retry request",
        found.iter().map(|(_, l)| l.len()).sum::<usize>()
    ))?;
    Ok(EXIT_OK)
}

/// Edits the checkpoint of projection `name` with `edit` while no runner of it runs (see the
/// module docs), and saves it.
async fn edit<T>(
    store: &OpenedStore,
    name: &str,
    edit: impl FnOnce(&mut Checkpoint) -> CliResult<T>,
) -> CliResult<T> {
    let es = store.store();
    // Held until the edit is saved: no runner can take over meanwhile.
    let _lease = match es
        .try_lease(name)
        .await
        .doing(&format!("asking for the runner lease of {name:?}"))?
    {
        Lease::NotNeeded => None,
        Lease::Acquired(lease) => Some(lease),
        Lease::HeldElsewhere => {
            return Err(CliError::new(format!(
                "a runner of {name:?} is running (another process holds its lease): stop it \
                 first, or use `kernel.projections().retry`/`skip` in the program that runs it"
            )));
        }
    };
    let mut checkpoint = checkpoint(store, name).await?;
    let done = edit(&mut checkpoint)?;
    CheckpointStore::save(&*es, name, checkpoint.position, checkpoint.state)
        .await
        .doing(&format!("saving checkpoint {name:?}"))?;
    Ok(done)
}

/// Marks the parked events of `key` in projection `name` for a retry (see the module docs);
/// returns how many. An error when none is parked.
pub(crate) async fn request_retry(store: &OpenedStore, name: &str, key: &str) -> CliResult<usize> {
    let part = holding(store, name, key, None).await?;
    edit(store, &part, |checkpoint| {
        let marked = request_retry_in(checkpoint, key)
            .map_err(|e| CliError::new(format!("reading the dead letters of {name:?}: {e}")))?;
        if marked == 0 {
            return Err(CliError::new(format!(
                "no event of {key:?} is parked in projection {name:?} (see `es dlq list {name}`)"
            )));
        }
        Ok(marked)
    })
    .await
}

/// `es dlq retry NAME KEY`.
pub(crate) async fn retry(
    store: &OpenedStore,
    ctx: &mut Ctx,
    name: &str,
    key: &str,
) -> CliResult<u8> {
    let marked = request_retry(store, name, key).await?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "projection": name,
            "key": key,
            "retry_requested": marked,
        }))?;
    } else {
        ctx.out.line(format!(
            "{marked} parked events of {key:?} in projection {name:?} marked for a retry: its \
             runner re-runs them in order when it next starts"
        ))?;
    }
    Ok(EXIT_OK)
}

/// `es dlq skip NAME KEY POSITION --reason TEXT`.
pub(crate) async fn skip(
    store: &OpenedStore,
    ctx: &mut Ctx,
    name: &str,
    key: &str,
    position: u64,
    reason: &str,
) -> CliResult<u8> {
    skip_letter(store, name, key, position, reason).await?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "projection": name,
            "key": key,
            "position": position,
            "skipped": reason,
        }))?;
    } else {
        ctx.out.line(format!(
            "skipped the event at position {position} of {key:?} in projection {name:?}: {reason}"
        ))?;
    }
    Ok(EXIT_OK)
}

/// Skips the parked event of `key` at `position` in projection `name`, keeping `reason` in
/// its record. An error when no such event is parked.
pub(crate) async fn skip_letter(
    store: &OpenedStore,
    name: &str,
    key: &str,
    position: u64,
    reason: &str,
) -> CliResult<()> {
    let part = holding(store, name, key, Some(position)).await?;
    edit(store, &part, |checkpoint| {
        let skipped = skip_in(checkpoint, key, position, reason)
            .map_err(|e| CliError::new(format!("reading the dead letters of {name:?}: {e}")))?;
        if skipped {
            Ok(())
        } else {
            Err(CliError::new(format!(
                "no event of {key:?} is parked at position {position} in projection {name:?} \
                 (see `es dlq list {name}`)"
            )))
        }
    })
    .await
}
