//! Rebuilding a projection from position 1 while its runner keeps answering: the fresh state is
//! built aside, then swapped in with its checkpoint in one write.

use std::sync::Arc;

use crate::store::{CheckpointStore, EventStore};

use super::error::ProjectionError;
use super::options::{ProjectionOptions, RebuildProgress};
use super::read_model::{Projection, apply_event};
use super::shared::Shared;

/// Clears the rebuild progress of a runner when the rebuild ends, however it ends.
struct ProgressGuard<'a, P>(Option<&'a Shared<P>>);

impl<P> ProgressGuard<'_, P> {
    fn set(&self, position: u64, head: u64) {
        if let Some(shared) = self.0 {
            shared.status.lock().rebuild = Some(RebuildProgress { position, head });
        }
    }
}

impl<P> Drop for ProgressGuard<'_, P> {
    fn drop(&mut self) {
        if let Some(shared) = self.0 {
            shared.status.lock().rebuild = None;
        }
    }
}

/// A fresh state folded from `next` to the head of the log, with the last position read.
async fn catch_up<P: Projection>(
    store: &dyn EventStore,
    state: &mut P,
    mut last: u64,
    batch: usize,
    progress: &ProgressGuard<'_, P>,
) -> Result<u64, ProjectionError> {
    let filter = P::event_filter();
    let head = store.subscribe();
    loop {
        let page = store.read_all_matching(last + 1, batch, filter).await?;
        if page.scanned == 0 {
            return Ok(last);
        }
        for event in &page.events {
            apply_event(state, event)?;
        }
        last = page.scanned_to;
        progress.set(last, (*head.borrow()).max(last));
        // Reading is the slow part and may not yield on its own (an in-memory store).
        tokio::task::yield_now().await;
    }
}

/// Rebuilds `P` from position 1 into a fresh state, then, holding the runner's state lock only
/// for the events that arrived meanwhile, saves the fresh state and its position as one
/// checkpoint and swaps it into `running` (when a runner runs). Until that write the old
/// checkpoint and the old state are untouched, so a crash or an error leaves them as they
/// were. Returns the position of the swapped-in state.
pub(super) async fn rebuild<P: Projection>(
    store: &dyn EventStore,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
    running: Option<&Shared<P>>,
    options: &ProjectionOptions,
) -> Result<u64, ProjectionError> {
    let batch = options.batch_size.max(1);
    let progress = ProgressGuard(running);
    progress.set(0, *store.subscribe().borrow());
    let mut state = P::default();
    let last = catch_up(store, &mut state, 0, batch, &progress).await?;
    let Some(shared) = running else {
        save::<P>(checkpoints, options, &state, last).await?;
        return Ok(last);
    };
    // The runner waits while the tail is folded; readers of `state()` wait only that long.
    let mut current = shared.state.lock().await;
    let last = catch_up(store, &mut state, last, batch, &progress).await?;
    let processed = shared.progress.position();
    if last < processed {
        return Err(ProjectionError::State(format!(
            "the rebuild of `{}` read up to position {last}, behind the runner at {processed}: \
             the old state is kept",
            P::NAME
        )));
    }
    save::<P>(checkpoints, options, &state, last).await?;
    *current = state;
    // The fresh state applied every event, parked ones included: nothing is parked any more.
    shared.parked.lock().clear();
    shared.metrics.dead_letters.set(0.0);
    shared.metrics.lag(last);
    // Published before the state lock is let go: the runner, waiting on that lock with a page
    // read after its old position, must find its position moved and drop the page (its events
    // are in the fresh state), not apply them a second time.
    shared.progress.publish(last);
    drop(current);
    Ok(last)
}

/// Saves `state` at `position` as `P`'s checkpoint, in one write.
async fn save<P: Projection>(
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
    options: &ProjectionOptions,
    state: &P,
    position: u64,
) -> Result<(), ProjectionError> {
    let Some(store) = checkpoints else {
        return Ok(());
    };
    let bytes = if options.persist_state {
        state.encode_state().transpose()?
    } else {
        None
    };
    store.save(P::NAME, position, bytes).await?;
    Ok(())
}
