//! What a projection runner shares with its handles and with [`super::Projections`]: its state,
//! its progress and its status.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::follow::Progress;
use crate::store::{CheckpointStore, EventStore};

use super::dead_letter::Parked;
use super::metrics::ProjectionMetricsRef;
use super::options::{ProjectionStatus, RebuildProgress, SkippedEvent};

/// What a runner shares with its handles.
pub(super) struct Shared<P> {
    pub(super) name: &'static str,
    /// Its checkpoint's name: `name`, or `name#i/n` for partition `i` of `n`.
    pub(super) checkpoint: String,
    pub(super) state: tokio::sync::Mutex<P>,
    /// Its position, phase and stop signal.
    pub(super) progress: Arc<Progress>,
    pub(super) status: Mutex<StatusInner>,
    /// Its metrics, and what its lag is computed from.
    pub(super) metrics: ProjectionMetricsRef,
    /// Its dead letters. Changed only under the `state` lock, so that a checkpoint saved
    /// under it holds the state and the dead letters of one moment.
    pub(super) parked: Mutex<Parked>,
    /// The log, where a retry reads the parked events again. Weak: the runner's task holds
    /// the store, and a stopped runner (kept for `lookup`) must not keep it open.
    pub(super) store: Weak<dyn EventStore>,
    /// Where its checkpoint goes (`None`: in memory only); weak, as `store`.
    pub(super) checkpoints: Option<Weak<dyn CheckpointStore>>,
    /// Whether its checkpoint holds its state.
    pub(super) persist_state: bool,
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
    let lag = metrics.refresh(position);
    let status = shared.status.lock();
    ProjectionStatus {
        name: shared.checkpoint.clone(),
        phase: progress.phase(),
        position,
        skipped_count: status.skipped_count,
        skipped: status.skipped.iter().cloned().collect(),
        rebuild: status.rebuild,
        dead_letters: shared.parked.lock().parked_count() as u64,
        lag_events: lag.events,
        lag: lag.time,
        events_handled: metrics.handled.get(),
        events_filtered: metrics.filtered.get(),
        restarts: metrics.restarts.get(),
        standby: progress.standby(),
        partitions: Vec::new(),
    }
}
