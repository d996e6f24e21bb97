//! What a projection runner shares with its handles and with [`super::Projections`]: its state,
//! its progress and its status.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::follow::Progress;

use super::metrics::ProjectionMetricsRef;
use super::options::{ProjectionStatus, RebuildProgress, SkippedEvent};

/// What a runner shares with its handles.
pub(super) struct Shared<P> {
    pub(super) name: &'static str,
    pub(super) state: tokio::sync::Mutex<P>,
    /// Its position, phase and stop signal.
    pub(super) progress: Arc<Progress>,
    pub(super) status: Mutex<StatusInner>,
    /// Its metrics, and what its lag is computed from.
    pub(super) metrics: ProjectionMetricsRef,
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
        Box::pin(self.progress.stop())
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// The part of a runner's status that only projections have.
#[derive(Default)]
pub(super) struct StatusInner {
    /// How far a rebuild in progress has read, if one is.
    pub(super) rebuild: Option<RebuildProgress>,
    pub(super) skipped_count: u64,
    pub(super) skipped: VecDeque<SkippedEvent>,
}

/// A runner's status, with its lag (which this also sets on the lag gauges).
pub(super) fn status_of<P>(shared: &Shared<P>) -> ProjectionStatus {
    let progress = &shared.progress;
    let position = progress.position();
    let metrics = &shared.metrics;
    let lag = metrics.lag(position);
    let status = shared.status.lock();
    ProjectionStatus {
        name: shared.name.to_owned(),
        phase: progress.phase(),
        position,
        skipped_count: status.skipped_count,
        skipped: status.skipped.iter().cloned().collect(),
        rebuild: status.rebuild,
        lag_events: lag.events,
        lag: lag.time,
        events_handled: metrics.handled.get(),
        events_filtered: metrics.filtered.get(),
        restarts: metrics.restarts.get(),
        standby: progress.standby(),
    }
}
