//! [`ProjectionHandle`]: a running projection's state, position and status, shared with its
//! runner.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::options::{ProjectionPhase, ProjectionStatus, RebuildProgress, SkippedEvent};
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
    /// Asks the runner to stop.
    pub(super) stop: watch::Sender<bool>,
    /// The runner's task, taken by the first `stop` to wait for it.
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

impl<P> Shared<P> {
    /// Asks the runner to stop after the event it is handling and waits for its task to end.
    /// Its status then says `Stopped`.
    pub(super) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A runner seen without its projection type, as [`super::Projections`] keeps it.
pub(super) trait AnyRunner: Send + Sync + 'static {
    /// Its status.
    fn status(&self) -> ProjectionStatus;
    /// Asks it to stop and waits for it.
    fn stop(&self) -> StopFuture<'_>;
    /// Its shared part, to downcast to `Shared<P>`.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// The boxed future of [`AnyRunner::stop`].
pub(super) type StopFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

impl<P: Send + 'static> AnyRunner for Shared<P> {
    fn status(&self) -> ProjectionStatus {
        status_of(self)
    }

    fn stop(&self) -> StopFuture<'_> {
        Box::pin(Shared::stop(self))
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The mutable part of a runner's status.
pub(super) struct StatusInner {
    pub(super) phase: ProjectionPhase,
    /// How far a rebuild in progress has read, if one is.
    pub(super) rebuild: Option<RebuildProgress>,
    pub(super) skipped_count: u64,
    pub(super) skipped: VecDeque<SkippedEvent>,
    /// Whether the runner stands by while another process holds its lease.
    pub(super) standby: bool,
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
    /// A copy of the current state. On a standby it is the state this runner last loaded or
    /// processed (it may include a batch it processed but could not save after losing its
    /// lease; taking over reloads the checkpoint).
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
    ///
    /// A standby ([`ProjectionStatus::standby`]: another process sharing the checkpoint store
    /// runs this projection) is not caught up: it returns at once only for positions up to the
    /// checkpoint it last loaded, and otherwise waits until this runner has taken over and
    /// processed `position` itself. It does not follow the other process's progress; wrap it
    /// in a timeout where the other process's work is enough.
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

    /// Stops the runner after the event it is handling (what it handled is checkpointed) and
    /// waits for it; its status then says [`ProjectionPhase::Stopped`]. Stopping a stopped
    /// runner does nothing.
    pub async fn stop(&self) -> Result<(), ProjectionError> {
        self.shared.stop().await;
        Ok(())
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
        rebuild: status.rebuild,
        lag_events: lag.events,
        lag: lag.time,
        events_handled: metrics.handled.get(),
        events_filtered: metrics.filtered.get(),
        restarts: metrics.restarts.get(),
        standby: status.standby,
    }
}
