//! What a process manager runner shares with its handles, and the status they report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::follow::{Progress, ProjectionPhase};

use super::metrics::Metrics;
use super::requests::Request;
use crate::projection::DeadLetter;

/// What a runner shares with its handles.
pub(crate) struct Shared {
    /// Its checkpoint's name, which its status reports: `process:NAME` shortened to `NAME`,
    /// or `NAME#i/n` for partition `i` of `n`.
    pub(crate) name: String,
    /// Its position (the last one whose events were handled and their commands answered),
    /// phase and stop signal.
    pub(crate) progress: Arc<Progress>,
    pub(crate) metrics: Metrics,
    pub(crate) instances: AtomicUsize,
    /// Pending deadlines of the live instances.
    pub(crate) deadlines: AtomicUsize,
    pub(crate) skipped: AtomicU64,
    /// Its dead letters as the runner last published them.
    pub(crate) dead_letters: parking_lot::Mutex<Vec<DeadLetter>>,
    /// Gauge [`DEAD_LETTERS`](crate::projection::metrics::DEAD_LETTERS): events parked.
    pub(crate) dead_letter_gauge: metrics::Gauge,
    /// Where retries and skips are asked of the runner.
    pub(crate) requests: tokio::sync::mpsc::UnboundedSender<Request>,
}

impl Shared {
    /// The runner's status.
    pub(crate) fn status(&self) -> ProcessStatus {
        ProcessStatus {
            name: self.name.clone(),
            phase: self.progress.phase(),
            position: self.progress.position(),
            instances: self.instances.load(Ordering::Relaxed),
            events_handled: self.metrics.events_handled.get(),
            commands_sent: self.metrics.commands_sent.get(),
            rejections: self.metrics.rejections.get(),
            deadlines_pending: self.deadlines.load(Ordering::Relaxed),
            deadlines_fired: self.metrics.deadlines_fired.get(),
            skipped: self.skipped.load(Ordering::Relaxed),
            dead_letters: self
                .dead_letters
                .lock()
                .iter()
                .filter(|l| l.is_parked())
                .count(),
            standby: self.progress.standby(),
            partitions: Vec::new(),
        }
    }
}

/// A process manager runner's status, from
/// [`ProcessManagers::lookup`](super::ProcessManagers::lookup) or
/// [`ProcessHandle::status`](super::ProcessHandle::status).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStatus {
    /// The manager's name.
    pub name: String,
    /// Running, caught up, or stopped (and why).
    pub phase: ProjectionPhase,
    /// The last position handled (its commands answered).
    pub position: u64,
    /// Live instances.
    pub instances: usize,
    /// Events handled by instances (on this kernel).
    pub events_handled: u64,
    /// Commands sent (on this kernel; a command sent again after an interruption counts again).
    pub commands_sent: u64,
    /// Rejections handed to `#[rejected]`.
    pub rejections: u64,
    /// Pending deadlines of the live instances.
    pub deadlines_pending: usize,
    /// Deadlines that fell due and were handled (on this kernel; one handled again after an
    /// interruption counts again).
    pub deadlines_fired: u64,
    /// Events and rejections skipped under [`ErrorPolicy::Skip`](crate::projection::ErrorPolicy::Skip).
    pub skipped: u64,
    /// Events parked in its dead-letter queue
    /// ([`ErrorPolicy::Park`](crate::projection::ErrorPolicy::Park)).
    pub dead_letters: usize,
    /// Whether the runner stands by: another process sharing the store (PostgreSQL) runs this
    /// manager, and this one takes over when that one's lease ends. Also `true` for the moment
    /// between `start` and the runner's first check that it may run.
    pub standby: bool,
    /// The status of each partition (named `NAME#i/n`), for a process manager run in more
    /// than one ([`ProjectionOptions::partitions`](crate::projection::ProjectionOptions::partitions));
    /// empty otherwise. The manager's own fields then sum the partitions' counts and take the
    /// lowest position and the phase of the least advanced partition (a stopped one first).
    pub partitions: Vec<ProcessStatus>,
}
