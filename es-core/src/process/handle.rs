//! Starting, finding and stopping process manager runners, and what they report.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ProcessManager;
use super::runner::{Runner, decode_instances};
use crate::kernel::Kernel;
use crate::projection::runner::Election;
use crate::projection::{ProjectionError, ProjectionOptions, ProjectionPhase};
use crate::store::CheckpointStore;

/// The prefix of a process manager's checkpoint name (`process:{NAME}`), so that it never
/// shares a checkpoint with a projection of the same name.
pub const CHECKPOINT_PREFIX: &str = "process:";

/// Counter: events handled by a process manager's instances (label `process_manager`).
pub const EVENTS_HANDLED: &str = "es_process_events_handled_total";
/// Counter: commands a process manager sent (label `process_manager`; a command sent again
/// after an interruption counts again).
pub const COMMANDS_SENT: &str = "es_process_commands_sent_total";
/// Counter: commands of a process manager that were rejected (label `process_manager`).
pub const REJECTIONS: &str = "es_process_rejections_total";
/// Gauge: live instances of a process manager (label `process_manager`).
pub const INSTANCES: &str = "es_process_instances";
/// Gauge: events in the log after a process manager's position (label `process_manager`).
pub const LAG_EVENTS: &str = "es_process_lag_events";

/// The metric handles of one runner, taken when it starts.
pub(crate) struct Metrics {
    pub(crate) events_handled: metrics::Counter,
    pub(crate) commands_sent: metrics::Counter,
    pub(crate) rejections: metrics::Counter,
    pub(crate) instances: metrics::Gauge,
    pub(crate) lag_events: metrics::Gauge,
}

impl Metrics {
    fn new(name: &'static str) -> Self {
        Self {
            events_handled: metrics::counter!(EVENTS_HANDLED, "process_manager" => name),
            commands_sent: metrics::counter!(COMMANDS_SENT, "process_manager" => name),
            rejections: metrics::counter!(REJECTIONS, "process_manager" => name),
            instances: metrics::gauge!(INSTANCES, "process_manager" => name),
            lag_events: metrics::gauge!(LAG_EVENTS, "process_manager" => name),
        }
    }
}

/// What a runner shares with its handles.
pub(crate) struct Shared {
    pub(crate) metrics: Metrics,
    pub(crate) name: &'static str,
    pub(crate) phase: Mutex<ProjectionPhase>,
    /// The last position whose events were handled and their commands answered.
    pub(crate) processed: watch::Sender<u64>,
    pub(crate) instances: AtomicUsize,
    pub(crate) events_handled: AtomicU64,
    pub(crate) commands_sent: AtomicU64,
    pub(crate) rejections: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// Whether the runner is standing by while another process holds the lease.
    pub(crate) standby: AtomicBool,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn status(&self) -> ProcessStatus {
        ProcessStatus {
            name: self.name.to_owned(),
            phase: self.phase.lock().clone(),
            position: *self.processed.borrow(),
            instances: self.instances.load(Ordering::Relaxed),
            events_handled: self.events_handled.load(Ordering::Relaxed),
            commands_sent: self.commands_sent.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            standby: self.standby.load(Ordering::Relaxed),
        }
    }

    fn is_stopped(&self) -> bool {
        matches!(*self.phase.lock(), ProjectionPhase::Stopped { .. })
    }

    /// Asks the runner to stop and waits until its task ended.
    async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            // A panic of the task is already recorded by the runner's drop.
            let _ = task.await;
        } else {
            let mut processed = self.processed.subscribe();
            while !self.is_stopped() {
                if processed.changed().await.is_err() {
                    break;
                }
            }
        }
    }
}

/// A process manager runner's status, from [`ProcessManagers::lookup`] or
/// [`ProcessHandle::status`].
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
    /// Events and rejections skipped under [`ErrorPolicy::Skip`](crate::projection::ErrorPolicy::Skip).
    pub skipped: u64,
    /// Whether the runner stands by: another process sharing the store (PostgreSQL) runs this
    /// manager, and this one takes over when that one's lease ends. Also `true` for the moment
    /// between `start` and the runner's first check that it may run.
    pub standby: bool,
}

/// A running process manager.
pub struct ProcessHandle<P> {
    shared: Arc<Shared>,
    _p: PhantomData<fn() -> P>,
}

impl<P> Clone for ProcessHandle<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _p: PhantomData,
        }
    }
}

impl<P> std::fmt::Debug for ProcessHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("status", &self.shared.status())
            .finish()
    }
}

impl<P: ProcessManager> ProcessHandle<P> {
    /// Waits until every event up to `position` was handled and the commands they caused were
    /// answered (and their rejections handled).
    ///
    /// # Errors
    ///
    /// [`ProjectionError::Stopped`] when the runner stops before reaching `position`.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionError> {
        let mut processed = self.shared.processed.subscribe();
        loop {
            if *processed.borrow_and_update() >= position {
                return Ok(());
            }
            if let ProjectionPhase::Stopped { error } = &*self.shared.phase.lock() {
                return Err(ProjectionError::Stopped {
                    name: P::NAME.to_owned(),
                    position: *processed.borrow(),
                    reason: error.clone().unwrap_or_else(|| "stopped".to_owned()),
                });
            }
            if processed.changed().await.is_err() {
                return Err(ProjectionError::Stopped {
                    name: P::NAME.to_owned(),
                    position: *self.shared.processed.borrow(),
                    reason: "the runner is gone".to_owned(),
                });
            }
        }
    }

    /// How many instances are live (started and not finished).
    pub async fn instances(&self) -> usize {
        self.shared.instances.load(Ordering::Relaxed)
    }

    /// The runner's status.
    pub fn status(&self) -> ProcessStatus {
        self.shared.status()
    }

    /// The last position handled.
    pub fn position(&self) -> u64 {
        *self.shared.processed.borrow()
    }

    /// Stops the runner and waits for it: commands in flight are answered first; what was
    /// handled since the last checkpoint is handled again (with the same command ids) by the
    /// next runner.
    pub async fn stop(&self) {
        self.shared.stop().await;
    }
}

/// The process manager runners of a kernel, by name: `kernel.process_managers()`.
pub(crate) struct Registry {
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    runners: Mutex<HashMap<&'static str, Arc<Shared>>>,
    /// Serializes `start`, so one name never gets two runners.
    starting: tokio::sync::Mutex<()>,
}

impl Registry {
    pub(crate) fn new(checkpoints: Option<Arc<dyn CheckpointStore>>) -> Self {
        Self {
            checkpoints,
            runners: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) async fn stop_all(&self) {
        let runners: Vec<_> = self.runners.lock().values().cloned().collect();
        for runner in runners {
            runner.stop().await;
        }
    }
}

/// Starts, finds and stops a kernel's process managers (`kernel.process_managers()`).
#[derive(Clone, Copy)]
pub struct ProcessManagers<'k> {
    kernel: &'k Kernel,
}

impl<'k> ProcessManagers<'k> {
    pub(crate) fn new(kernel: &'k Kernel) -> Self {
        Self { kernel }
    }

    /// Starts process manager `P`, resuming from its checkpoint (position and instance states),
    /// or returns a handle to the one already running.
    ///
    /// A process manager always saves its instances with its checkpoint: it needs a checkpoint
    /// store (the kernel's, or [`ProjectionOptions::checkpoint_store`]).
    /// [`ProjectionOptions::start_position`] starts at that position with no instances.
    ///
    /// # Errors
    ///
    /// [`ProjectionError::State`] when there is no checkpoint store or the saved instances do
    /// not decode; [`ProjectionError::Store`] when the checkpoint cannot be read.
    pub async fn start<P: ProcessManager>(
        &self,
        options: ProjectionOptions,
    ) -> Result<ProcessHandle<P>, ProjectionError> {
        let registry = self.kernel.process_registry();
        let _starting = registry.starting.lock().await;
        if let Some(shared) = registry.runners.lock().get(P::NAME)
            && !shared.is_stopped()
        {
            return Ok(ProcessHandle {
                shared: shared.clone(),
                _p: PhantomData,
            });
        }
        let Some(checkpoints) = options
            .checkpoint_store
            .clone()
            .or_else(|| registry.checkpoints.clone())
        else {
            return Err(ProjectionError::State(format!(
                "process manager `{}` needs a checkpoint store to save its instances: build the \
                 kernel with `.store(..)` or `.checkpoint_store(..)`, or give one in \
                 `ProjectionOptions::checkpoint_store`",
                P::NAME
            )));
        };
        let checkpoint_name = format!("{CHECKPOINT_PREFIX}{}", P::NAME);
        let (position, instances) = match options.start_position {
            Some(position) => (position.saturating_sub(1), HashMap::new()),
            None => match checkpoints.load(&checkpoint_name).await? {
                Some(checkpoint) => (
                    checkpoint.position,
                    match &checkpoint.state {
                        Some(bytes) => decode_instances::<P>(bytes)?,
                        None => HashMap::new(),
                    },
                ),
                None => (0, HashMap::new()),
            },
        };
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            metrics: Metrics::new(P::NAME),
            name: P::NAME,
            phase: Mutex::new(ProjectionPhase::Running),
            processed: watch::Sender::new(position),
            instances: AtomicUsize::new(instances.len()),
            events_handled: AtomicU64::new(0),
            commands_sent: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            // Until the runner knows it may run (its store elects no runner, or it holds the
            // lease), it stands by.
            standby: AtomicBool::new(true),
            stop,
            task: Mutex::new(None),
        });
        let runner = Runner::<P> {
            kernel: self.kernel.downgrade(),
            store: self.kernel.event_store().clone(),
            checkpoints,
            election: Election::new(checkpoint_name.clone()),
            checkpoint_name,
            options,
            shared: shared.clone(),
            stop: stop_rx,
            instances,
            saved_at: std::time::Instant::now(),
            unsaved: None,
        };
        let task = tokio::spawn(runner.run());
        *shared.task.lock() = Some(task);
        registry.runners.lock().insert(P::NAME, shared.clone());
        Ok(ProcessHandle {
            shared,
            _p: PhantomData,
        })
    }

    /// The status of the runner named `name`, if one was started on this kernel.
    pub fn lookup(&self, name: &str) -> Option<ProcessStatus> {
        let registry = self.kernel.process_registry();
        registry.runners.lock().get(name).map(|s| s.status())
    }

    /// The statuses of every runner started on this kernel.
    pub fn statuses(&self) -> Vec<ProcessStatus> {
        let registry = self.kernel.process_registry();
        let mut all: Vec<_> = registry
            .runners
            .lock()
            .values()
            .map(|s| s.status())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Stops the runner named `name` and waits for it.
    ///
    /// # Errors
    ///
    /// [`ProjectionError::NotFound`] when no runner of that name was started.
    pub async fn stop(&self, name: &str) -> Result<(), ProjectionError> {
        let registry = self.kernel.process_registry();
        let shared = registry.runners.lock().get(name).cloned();
        match shared {
            Some(shared) => {
                shared.stop().await;
                Ok(())
            }
            None => Err(ProjectionError::NotFound(name.to_owned())),
        }
    }
}
