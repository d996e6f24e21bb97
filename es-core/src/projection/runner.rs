//! A managed projection runner's own part (the follower in `crate::follow` does the rest): folds
//! each page into the state under the error policy, saves the checkpoint (with the state) after
//! each page, and restores both after taking the lease over.

use std::sync::Arc;

use crate::follow::{Control, End, Follow, Page};
use crate::store::{Checkpoint, RecordedEvent};

use super::dead_letter::{Parked, unwrap_state};
use super::error::ProjectionError;
use super::options::{OnFailure, ProjectionOptions, SKIPPED_KEPT, SkippedEvent};
use super::parking::{checkpoint_state, park, park_behind, requested_retries};
use super::partition::Route;
use super::read_model::{Projection, apply_event};
use super::shared::Shared;

/// How often (in events) a runner checks for a stop request inside a batch.
const STOP_CHECK_EVERY: usize = 64;

/// One projection's runner: its state and how it handles failures.
pub(super) struct Runner<P> {
    pub(super) shared: Arc<Shared<P>>,
    pub(super) options: ProjectionOptions,
    /// Which events are this runner's (all of them, unpartitioned).
    pub(super) route: Route,
}

impl<P: Projection> Follow for Runner<P> {
    async fn page(&mut self, page: Page, control: &Control) -> Result<(), End> {
        // While the page is processed, its first event is the oldest one not processed: the
        // lag gauges say how old it is. (The next read, or reaching the head, updates them
        // again.)
        requested_retries(&self.shared).await;
        let metrics = &self.shared.metrics;
        if let Some(first) = page.read.events.first() {
            metrics.note_pending(first.position, first.timestamp);
        }
        metrics.lag(page.after);
        let filtered = page.read.scanned.saturating_sub(page.read.events.len());
        self.process(
            page.after,
            &page.read.events,
            page.read.scanned_to,
            filtered,
            control,
        )
        .await
    }

    async fn caught_up(&mut self, position: u64, _: &Control) -> Result<(), End> {
        requested_retries(&self.shared).await;
        self.shared.metrics.lag(position);
        Ok(())
    }

    /// Reloads state and position from the checkpoint; a state that cannot be restored stops
    /// the runner.
    async fn resume(&mut self, checkpoint: Option<Checkpoint>) -> Result<(), End> {
        let (state, position, parked) = restore::<P>(checkpoint, self.options.persist_state)
            .map_err(|e| End::Failed(e.to_string()))?;
        let mut current = self.shared.state.lock().await;
        *current = state;
        let count = parked.parked_count();
        *self.shared.parked.lock() = parked;
        drop(current);
        self.shared.metrics.dead_letters.set(count as f64);
        self.shared.metrics.lag(position);
        self.shared.progress.publish(position);
        Ok(())
    }
}

impl<P: Projection> Runner<P> {
    /// Folds one page of accepted events into the state and saves the checkpoint at
    /// `scanned_to` (the page skipped `filtered` events the projection does not handle). The
    /// counters and lag gauges are updated before the new position is published, so whoever
    /// waits for it sees them.
    async fn process(
        &mut self,
        read_after: u64,
        page: &[RecordedEvent],
        scanned_to: u64,
        filtered: usize,
        control: &Control,
    ) -> Result<(), End> {
        let progress = &self.shared.progress;
        let mut state = self.shared.state.lock().await;
        if progress.position() != read_after {
            // A rebuild swapped in a state that includes this page: read on from its position.
            return Ok(());
        }
        let mut processed = scanned_to;
        let mut outcome = Ok(());
        let mut handled = 0;
        let mut routed_away = 0;
        for (i, event) in page.iter().enumerate() {
            // A stop is honoured between events, so a large batch never holds up `stop` or
            // `Kernel::shutdown`; what was handled so far is saved below.
            if i % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1 && control.stopping() {
                processed = event.position - 1;
                outcome = Err(End::Stopped);
                break;
            }
            if !self.route.takes(event) {
                // Another partition's event: skipped here, like a filtered one.
                routed_away += 1;
                continue;
            }
            match self.apply_with_policy(&mut state, event, control).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => {
                    processed = event.position - 1;
                    outcome = Err(e);
                    break;
                }
            }
        }
        self.shared.metrics.handled.add(handled);
        if outcome.is_ok() {
            self.shared
                .metrics
                .filtered
                .add(filtered as u64 + routed_away);
        }
        if !control.may_save() {
            // The lease is lost: this page is neither saved nor published; the next takeover
            // reloads the checkpoint.
            return outcome;
        }
        if processed > progress.position() {
            if control.keeps_checkpoints() {
                let bytes = checkpoint_state(&self.shared, &state)
                    .map_err(|e| End::Failed(format!("saving the state: {e}")))?;
                control.save(processed, bytes).await?;
            }
            drop(state);
            self.shared.metrics.lag(processed);
            progress.publish(processed);
        }
        outcome
    }

    /// Applies one event under the error policy: `Ok(true)` when it was handled, `Ok(false)`
    /// when it was skipped or parked. An event whose key has a parked event is parked behind
    /// it, whatever the policy (one that parked under an earlier policy stays parked).
    async fn apply_with_policy(
        &self,
        state: &mut P,
        event: &RecordedEvent,
        control: &Control,
    ) -> Result<bool, End> {
        if park_behind(&self.shared, event) {
            return Ok(false);
        }
        let mut attempt = 0u32;
        loop {
            let error = match apply_event(state, event) {
                Ok(()) => return Ok(true),
                Err(e) => e,
            };
            attempt += 1;
            match self.options.error_policy.on_failure(attempt, &error) {
                OnFailure::Stop(message) => return Err(End::Failed(message)),
                OnFailure::Park(message) => {
                    park(&self.shared, event, message);
                    return Ok(false);
                }
                OnFailure::Skip => {
                    tracing::warn!(projection = %self.shared.checkpoint, position = event.position, error = %error, "skipping an event");
                    self.shared.metrics.error_skipped.increment(1);
                    let mut status = self.shared.status.lock();
                    status.skipped_count += 1;
                    status.skipped.push_back(SkippedEvent {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        error: error.to_string(),
                    });
                    if status.skipped.len() > SKIPPED_KEPT {
                        status.skipped.pop_front();
                    }
                    return Ok(false);
                }
                OnFailure::RetryAfter(wait) => {
                    tracing::warn!(projection = %self.shared.checkpoint, position = event.position, attempt, error = %error, "retrying an event");
                    if control.pause(wait).await {
                        return Err(End::Stopped);
                    }
                }
            }
        }
    }
}

/// The state, position and dead letters of `P` saved in `checkpoint` (with its state when it
/// saved one and `persist` says to restore it); from `Default` at 0 without a checkpoint.
pub(super) fn restore<P: Projection>(
    checkpoint: Option<Checkpoint>,
    persist: bool,
) -> Result<(P, u64, Parked), ProjectionError> {
    let Some(checkpoint) = checkpoint else {
        return Ok((P::default(), 0, Parked::default()));
    };
    let (own, parked) = unwrap_state(checkpoint.state).map_err(|e| {
        ProjectionError::State(format!(
            "the checkpoint of `{}` at position {}: {e}",
            P::NAME,
            checkpoint.position
        ))
    })?;
    if !persist {
        return Ok((P::default(), checkpoint.position, parked));
    }
    match own.as_deref().map(P::decode_state) {
        Some(Some(Ok(state))) => Ok((state, checkpoint.position, parked)),
        Some(Some(Err(e))) => Err(ProjectionError::State(format!(
            "the saved state of `{}` at position {} cannot be restored: {e}",
            P::NAME,
            checkpoint.position
        ))),
        // Nothing saved, or a projection that does not persist its state: it keeps its own
        // read model elsewhere and only needs the position.
        Some(None) | None => Ok((P::default(), checkpoint.position, parked)),
    }
}
