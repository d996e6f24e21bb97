//! `es delete-stream` and `es truncate`: streams that end (see
//! `es_core::store::lifecycle`).

use es_core::store::StreamId;
use es_core::store::lifecycle;
use es_stores::OpenedStore;

use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, StoreContext};

/// `es delete-stream TYPE ID [--hard --yes]`.
pub(crate) async fn delete_stream(
    store: &OpenedStore,
    ctx: &mut Ctx,
    stream: StreamId,
    hard: bool,
    yes: bool,
) -> CliResult<u8> {
    stream
        .validate()
        .map_err(|e| CliError::new(e.to_string()))?;
    let es = store.store();
    if hard && !yes {
        let version = es
            .stream_version(&stream)
            .await
            .doing(&format!("reading the version of {stream}"))?;
        return Err(CliError::new(format!(
            "--hard removes the {version} events of {stream} and its snapshots for good (a \
             tombstone stays, so the stream keeps refusing commands); rerun with --yes"
        )));
    }
    let done = lifecycle::delete_stream(&*es, Some(&*es), &stream, hard)
        .await
        .doing(&format!("deleting {stream}"))?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "stream": stream.to_string(),
            "hard": hard,
            "version": done.version,
            "tombstoned": done.tombstoned,
            "removed": done.removed,
        }))?;
    } else {
        let how = if done.tombstoned {
            format!("deleted: tombstone written at version {}", done.version)
        } else {
            format!(
                "was already deleted (tombstone at version {})",
                done.version
            )
        };
        let removed = if hard {
            format!("; {} events and its snapshots removed", done.removed)
        } else {
            String::new()
        };
        ctx.out.line(format!("stream {stream} {how}{removed}"))?;
    }
    Ok(EXIT_OK)
}

/// `es truncate TYPE ID --before SEQ`.
pub(crate) async fn truncate(
    store: &OpenedStore,
    ctx: &mut Ctx,
    stream: StreamId,
    before: u64,
) -> CliResult<u8> {
    stream
        .validate()
        .map_err(|e| CliError::new(e.to_string()))?;
    let es = store.store();
    let removed = lifecycle::truncate_before(&*es, &*es, &stream, before)
        .await
        .doing(&format!("truncating {stream}"))?;
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "stream": stream.to_string(),
            "before": before,
            "removed": removed,
        }))?;
    } else {
        ctx.out.line(format!(
            "stream {stream}: {removed} events before sequence {before} removed"
        ))?;
    }
    Ok(EXIT_OK)
}
