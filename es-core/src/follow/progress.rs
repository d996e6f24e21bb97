//! [`Progress`]: where a runner is, shared between its task and its handles: the last position
//! it handled, its phase, whether it stands by, and how to stop it.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where a runner is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionPhase {
    /// Reading a backlog, or standing by while another process runs this name (the status
    /// then says `standby`).
    Running,
    /// At the head of the log, waiting for new events.
    CaughtUp,
    /// Stopped: `error` is `None` after `stop`, else why it stopped.
    Stopped {
        /// The error that stopped it, if any.
        error: Option<String>,
    },
}

/// Why [`Progress::wait_for`] gave up: the runner stopped first.
pub(crate) struct Ended {
    /// The last position it handled.
    pub(crate) position: u64,
    /// Why it stopped (`"stopped"` after a stop request).
    pub(crate) reason: String,
}

/// What a runner's task shares with its handles.
pub(crate) struct Progress {
    /// The last position handled.
    processed: watch::Sender<u64>,
    phase: Mutex<ProjectionPhase>,
    /// Whether the runner stands by while another process holds its lease.
    standby: AtomicBool,
    /// Asks the runner to stop.
    stop: watch::Sender<bool>,
    /// The runner's task, taken by the first `stop` to wait for it.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Progress {
    /// A runner at `position`, running (standing by when `standby`: until it knows whether it
    /// may run).
    pub(crate) fn new(position: u64, standby: bool) -> Self {
        Self {
            processed: watch::Sender::new(position),
            phase: Mutex::new(ProjectionPhase::Running),
            standby: AtomicBool::new(standby),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        }
    }

    /// The last position handled.
    pub(crate) fn position(&self) -> u64 {
        *self.processed.borrow()
    }

    /// Publishes `position` as handled, waking whoever waits for it.
    pub(crate) fn publish(&self, position: u64) {
        self.processed.send_replace(position);
    }

    /// The runner's phase.
    pub(crate) fn phase(&self) -> ProjectionPhase {
        self.phase.lock().clone()
    }

    /// Sets the runner's phase.
    pub(crate) fn set_phase(&self, phase: ProjectionPhase) {
        let mut current = self.phase.lock();
        if *current != phase {
            *current = phase;
        }
    }

    /// Whether the runner has stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(*self.phase.lock(), ProjectionPhase::Stopped { .. })
    }

    /// Whether the runner stands by.
    pub(crate) fn standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
    }

    /// Starts or ends standing by. A standby is not caught up: it handles nothing until it
    /// takes over.
    pub(crate) fn set_standby(&self, on: bool) {
        let mut phase = self.phase.lock();
        self.standby.store(on, Ordering::Relaxed);
        if on && *phase == ProjectionPhase::CaughtUp {
            *phase = ProjectionPhase::Running;
        }
    }

    /// The stop signal, as the runner's task watches it.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Records the runner's task (under the lock a `stop` takes, so it cannot miss the task).
    pub(crate) fn set_task(&self, spawn: impl FnOnce() -> JoinHandle<()>) {
        let mut task = self.task.lock();
        *task = Some(spawn());
    }

    /// Records that the runner stopped (with why, when it failed) and wakes `wait_for` callers
    /// so they see it.
    pub(crate) fn finish(&self, error: Option<String>) {
        *self.phase.lock() = ProjectionPhase::Stopped { error };
        self.processed.send_modify(|_| {});
    }

    /// Records, unless it was recorded already, that the runner's task ended without saying
    /// why (a panic outside the handlers, or its runtime dropping the task), so that `lookup`
    /// and `wait_for` say it stopped rather than report it running forever.
    pub(crate) fn finish_unexpectedly(&self) {
        let mut phase = self.phase.lock();
        if !matches!(*phase, ProjectionPhase::Stopped { .. }) {
            *phase = ProjectionPhase::Stopped {
                error: Some(
                    "the runner's task ended unexpectedly (a panic outside the handlers, or \
                     its runtime shut down)"
                        .to_owned(),
                ),
            };
            drop(phase);
            self.processed.send_modify(|_| {});
        }
    }

    /// Asks the runner to stop and waits until it has (its task ended, or, when another caller
    /// waits for the task, its phase says so).
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            // A panic of the task is already recorded by the runner's drop.
            let _ = task.await;
            return;
        }
        let mut processed = self.processed.subscribe();
        while !self.is_stopped() {
            if processed.changed().await.is_err() {
                break;
            }
        }
    }

    /// Waits until the runner has handled `position`; fails when it stops first.
    pub(crate) async fn wait_for(&self, position: u64) -> Result<(), Ended> {
        let mut processed = self.processed.subscribe();
        loop {
            if *processed.borrow_and_update() >= position {
                return Ok(());
            }
            if let ProjectionPhase::Stopped { error } = &*self.phase.lock() {
                return Err(Ended {
                    position: *processed.borrow(),
                    reason: error.clone().unwrap_or_else(|| "stopped".to_owned()),
                });
            }
            if processed.changed().await.is_err() {
                return Err(Ended {
                    position: *processed.borrow(),
                    reason: "the runner is gone".to_owned(),
                });
            }
        }
    }
}
