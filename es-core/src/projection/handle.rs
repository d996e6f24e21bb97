//! [`ProjectionHandle`]: a running projection's state, position and status, shared with its
//! runner.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::options::{ProjectionPhase, ProjectionStatus, SkippedEvent};
use super::{Projection, ProjectionError};
use crate::metrics::ProjectionMetricsRef;

/// What a runner shares with its handles.
pub(super) struct Shared<P> {
    pub(super) name: &'static str,
    pub(super) state: tokio::sync::Mutex<P>,
    /// The last position processed.
    pub(super) processed: watch::Sender<u64>,
    pub(super) status: Mutex<StatusInner>,
    /// Its metrics, and what its lag is computed from.
    pub(super) metrics: ProjectionMetricsRef,
}

/// The mutable part of a runner's status.
pub(super) struct StatusInner {
    pub(super) phase: ProjectionPhase,
    pub(super) skipped_count: u64,
    pub(super) skipped: VecDeque<SkippedEvent>,
}

/// A handle on a running projection.
pub struct ProjectionHandle<P> {
    pub(super) shared: Arc<Shared<P>>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// A copy of the current state.
    pub async fn state(&self) -> P
    where
        P: Clone,
    {
        self.shared.state.lock().await.clone()
    }

    /// Runs `f` on the current state without copying it.
    pub async fn with_state<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&*self.shared.state.lock().await)
    }

    /// The last position processed.
    pub fn position(&self) -> u64 {
        *self.shared.processed.borrow()
    }

    /// Waits until the runner has processed `position` (read-your-writes after a dispatch).
    /// Fails if the runner stops first.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionError> {
        let mut processed = self.shared.processed.subscribe();
        loop {
            if *processed.borrow_and_update() >= position {
                return Ok(());
            }
            if let ProjectionPhase::Stopped { error } = &self.shared.status.lock().phase {
                return Err(ProjectionError::Stopped {
                    name: self.shared.name.to_owned(),
                    position: *processed.borrow(),
                    reason: error.clone().unwrap_or_else(|| "stopped".to_owned()),
                });
            }
            if processed.changed().await.is_err() {
                return Err(ProjectionError::NotFound(self.shared.name.to_owned()));
            }
        }
    }

    /// The runner's status.
    pub fn status(&self) -> ProjectionStatus {
        status_of(&self.shared)
    }
}

/// A runner's status, with its lag (which this also sets on the lag gauges).
pub(super) fn status_of<P>(shared: &Shared<P>) -> ProjectionStatus {
    let position = *shared.processed.borrow();
    let metrics = &shared.metrics;
    let lag = metrics.lag(position);
    let status = shared.status.lock();
    ProjectionStatus {
        name: shared.name.to_owned(),
        phase: status.phase.clone(),
        position,
        skipped_count: status.skipped_count,
        skipped: status.skipped.iter().cloned().collect(),
        lag_events: lag.events,
        lag: lag.time,
        events_handled: metrics.handled.get(),
        events_filtered: metrics.filtered.get(),
        restarts: metrics.restarts.get(),
    }
}
