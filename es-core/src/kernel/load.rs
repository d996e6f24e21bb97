//! Rehydration: an actor's state from the latest snapshot and the events after it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::metrics::AggregateMetrics;
use crate::aggregate::Aggregate;
use crate::event::EventSet;
use crate::store::lifecycle::is_tombstone;
use crate::store::{Snapshot, StoreError, StreamId};

use super::context::Context;
use super::snapshot::split_state;
use crate::panic::panic_message;

/// Why the state could not be loaded.
pub(crate) enum LoadError {
    /// The store failed, or an event no longer decodes.
    Store(StoreError),
    /// `apply` panicked on a stored event.
    Panicked(String),
    /// The stream was deleted: its log holds a tombstone.
    Deleted,
}

/// The loaded state and its version, rehydrating it first when `cache` is empty.
pub(crate) async fn loaded<'s, A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    cache: &'s mut Option<(A, u64)>,
    metrics: &AggregateMetrics,
) -> Result<(&'s mut A, &'s mut u64), LoadError> {
    let loaded = match cache.take() {
        Some(loaded) => loaded,
        // Boxed: rehydrating is rare (an actor's first command, or after a conflict), and its
        // reads would otherwise enlarge every batch's future, which the actor allocates per
        // batch (past the allocator's small-size fast path).
        None => Box::pin(rehydrate(ctx, stream, metrics)).await?,
    };
    let (state, version) = cache.insert(loaded);
    Ok((state, version))
}

/// Loads the latest snapshot (if any, and if it still decodes) and replays later events.
async fn rehydrate<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    metrics: &AggregateMetrics,
) -> Result<(A, u64), LoadError> {
    metrics.rehydrations.add(1);
    let mut state = A::default();
    let mut version = 0;
    if let Some(snapshots) = &ctx.snapshot_store {
        match snapshots.load_latest(stream).await {
            Ok(Some(snapshot)) => {
                if let Some(restored) = restore::<A>(ctx, stream, &snapshot).await? {
                    metrics.snapshot_hits.add(1);
                    state = restored;
                    version = snapshot.version;
                } else {
                    metrics.snapshots_discarded.add(1);
                }
            }
            Ok(None) => metrics.snapshot_misses.add(1),
            Err(e) => tracing::warn!(
                %stream,
                error = %e,
                "cannot load the latest snapshot; replaying the stream"
            ),
        }
    }
    let page = ctx.config.replay_page;
    loop {
        let events = ctx
            .event_store
            .read_stream(stream, version + 1, page)
            .await
            .map_err(LoadError::Store)?;
        let full = events.len() == page;
        // A hard-deleted stream starts at its tombstone: deleted, not damaged.
        if let Some(first) = events.first()
            && first.sequence != version + 1
            && !is_tombstone(first)
        {
            // The events before `first` were removed and no snapshot covers them.
            return Err(LoadError::Store(StoreError::Corrupt(format!(
                "stream {stream}: events {}..{} were removed (truncated) and no usable \
                 snapshot covers them, so the state cannot be rebuilt",
                version + 1,
                first.sequence - 1
            ))));
        }
        for recorded in &events {
            if is_tombstone(recorded) {
                return Err(LoadError::Deleted);
            }
            // The one decode path; an upcaster that panics is caught like `apply`.
            let event = catch_unwind(AssertUnwindSafe(|| A::Event::from_recorded(recorded)))
                .map_err(|p| LoadError::Panicked(panic_message(p)))?
                .map_err(|source| {
                    LoadError::Store(StoreError::Decode {
                        stream: stream.clone(),
                        sequence: recorded.sequence,
                        source,
                    })
                })?;
            catch_unwind(AssertUnwindSafe(|| state.apply(&event)))
                .map_err(|p| LoadError::Panicked(panic_message(p)))?;
            version = recorded.sequence;
        }
        metrics.events_replayed.add(events.len() as u64);
        if !full {
            break;
        }
    }
    Ok((state, version))
}

/// The state of `snapshot`, or `None` (logged) when it must be discarded: written at another
/// snapshot version (not decoded at all), not decoding, or ahead of the stream (its version
/// above the stream's head: the stream was reset or the snapshot belongs to other data, and
/// restoring it would give a wrong state and a conflict on every write).
async fn restore<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    snapshot: &Snapshot,
) -> Result<Option<A>, LoadError> {
    let Some((snapshot_version, json)) = split_state(&snapshot.state) else {
        tracing::warn!(%stream, version = snapshot.version, "ignoring a truncated snapshot; replaying the stream");
        return Ok(None);
    };
    if snapshot_version != A::SNAPSHOT_VERSION {
        tracing::info!(
            %stream,
            version = snapshot.version,
            snapshot_version,
            current = A::SNAPSHOT_VERSION,
            "ignoring a snapshot of another snapshot version; replaying the stream"
        );
        return Ok(None);
    }
    if snapshot.version > 0 {
        let head = ctx
            .event_store
            .stream_version(stream)
            .await
            .map_err(LoadError::Store)?;
        if head < snapshot.version {
            tracing::warn!(
                %stream,
                version = snapshot.version,
                head,
                "ignoring a snapshot ahead of its stream; replaying the stream"
            );
            return Ok(None);
        }
    }
    match serde_json::from_slice::<A>(json) {
        Ok(restored) => Ok(Some(restored)),
        Err(e) => {
            tracing::warn!(
                %stream,
                version = snapshot.version,
                error = %e,
                "ignoring a snapshot that no longer decodes; replaying the stream"
            );
            Ok(None)
        }
    }
}
