//! Rehydration: an actor's state from the latest snapshot and the events after it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::aggregate::Aggregate;
use crate::event::EventSet;
use crate::metrics::AggregateMetrics;
use crate::store::{StoreError, StreamId};

use super::context::Context;
use crate::panic::panic_message;

/// Why the state could not be loaded.
pub(crate) enum LoadError {
    /// The store failed, or an event no longer decodes.
    Store(StoreError),
    /// `apply` panicked on a stored event.
    Panicked(String),
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
        None => rehydrate(ctx, stream, metrics).await?,
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
            Ok(Some(snapshot)) => match serde_json::from_slice::<A>(&snapshot.state) {
                Ok(restored) => {
                    metrics.snapshot_hits.add(1);
                    state = restored;
                    version = snapshot.version;
                }
                Err(e) => {
                    metrics.snapshots_discarded.add(1);
                    tracing::warn!(
                        %stream,
                        version = snapshot.version,
                        error = %e,
                        "ignoring a snapshot that no longer decodes; replaying the stream"
                    );
                }
            },
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
        for recorded in &events {
            let event = A::Event::from_recorded(recorded).map_err(|e| {
                LoadError::Store(StoreError::Corrupt(format!(
                    "event {} of stream {stream} cannot be decoded: {e}",
                    recorded.sequence
                )))
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
