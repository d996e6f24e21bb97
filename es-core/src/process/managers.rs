//! Starting, finding and stopping a kernel's process manager runners:
//! `kernel.process_managers()`. Their registry is an extension of the kernel (started on top
//! of it, stopped first at its shutdown): the kernel does not know process managers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::Mutex;

use crate::follow::{self, Plan, Progress, ProjectionPhase, ShareGate, SharedPages};
use crate::kernel::{Extension, Kernel, ShutdownFuture};
use crate::projection::metrics::DEAD_LETTERS;
use crate::projection::{
    DeadLetter, ProjectionError, ProjectionOptions, check_partitions, partition_checkpoint,
    spread_partitions, stored_dead_letters,
};
use crate::store::{CheckpointStore, EventFilter};

use super::ProcessManager;
use super::deadline::Timers;
use super::group::Group;
use super::handle::ProcessHandle;
use super::metrics::Metrics;
use super::requests::{Ask, load_state, requests};
use super::runner::Runner;
use super::status::{ProcessStatus, Shared};

/// The prefix of a process manager's checkpoint name (`process:{NAME}`), so that it never
/// shares a checkpoint with a projection of the same name.
pub const CHECKPOINT_PREFIX: &str = "process:";

impl Kernel {
    /// The process managers of this kernel.
    pub fn process_managers(&self) -> ProcessManagers<'_> {
        ProcessManagers { kernel: self }
    }
}

/// The process manager runners of a kernel, by name.
struct Registry {
    /// The kernel's checkpoint store, the default of every runner.
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    runners: Mutex<HashMap<&'static str, Arc<Group>>>,
    /// Serializes `start`, so one name never gets two runners.
    starting: tokio::sync::Mutex<()>,
}

impl Extension for Registry {
    /// Stops every runner: at kernel shutdown, before the actors, so their in-flight commands
    /// still commit and what they handled is checkpointed.
    fn shutdown(&self) -> ShutdownFuture<'_> {
        Box::pin(async move {
            let runners: Vec<_> = self.runners.lock().values().cloned().collect();
            for runner in runners {
                runner.stop().await;
            }
        })
    }
}

/// Starts, finds and stops a kernel's process managers (`kernel.process_managers()`).
#[derive(Clone, Copy)]
pub struct ProcessManagers<'k> {
    kernel: &'k Kernel,
}

impl ProcessManagers<'_> {
    /// The kernel's registry, made the first time it is asked for.
    fn registry(&self) -> Arc<Registry> {
        self.kernel.extension(|| Registry {
            checkpoints: self.kernel.checkpoint_store().cloned(),
            runners: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts process manager `P`, resuming from its checkpoint (position, instance states and
    /// their pending deadlines), or returns a handle to the one already running.
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
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ProjectionError::Stopped {
                name: P::NAME.to_owned(),
                position: 0,
                reason: "a process manager needs a tokio runtime: start it from within one"
                    .to_owned(),
            })?;
        let registry = self.registry();
        let _starting = registry.starting.lock().await;
        let earlier = registry.runners.lock().get(P::NAME).cloned();
        if let Some(group) = earlier {
            if !group.is_stopped()
                && !matches!(group.status().phase, ProjectionPhase::Stopped { .. })
            {
                return Ok(ProcessHandle::new(group));
            }
            // A partition stopped while others run: stop them all before starting again.
            group.stop().await;
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
        let base = format!("{CHECKPOINT_PREFIX}{}", P::NAME);
        let count = options.partitions.max(1);
        if count > 1 {
            check_partitions(&checkpoints, &base, count, false).await?;
        }
        let gate = (count > 1).then(|| Arc::new(ShareGate::new(count as usize)));
        let spread = gate.as_ref().map(|gate| {
            spread_partitions(&runtime, checkpoints.clone(), &base, count, gate.clone())
        });
        let mut parts = Vec::with_capacity(count as usize);
        // The partitions read each page of the log once between them.
        let pages = (count > 1).then(|| Arc::new(SharedPages::new(count as usize)));
        for index in 0..count {
            let checkpoint_name = partition_checkpoint(&base, index, count);
            let (position, ((instances, deadlines), parked)) = match options.start_position {
                Some(position) => (position.saturating_sub(1), Default::default()),
                None => match checkpoints.load(&checkpoint_name).await? {
                    Some(checkpoint) => (checkpoint.position, load_state::<P>(checkpoint.state)?),
                    None => {
                        // No checkpoint of its own: refused if it ran in partitions.
                        if count == 1 {
                            check_partitions(&checkpoints, &base, count, false).await?;
                        }
                        (0, Default::default())
                    }
                },
            };
            let timers = Timers::new(deadlines);
            // Until the runner knows it may run (its store elects no runner, or it holds the
            // lease), it stands by.
            let progress = Arc::new(Progress::new(position, true));
            let (asks, requests) = requests();
            let partition = (count > 1).then(|| format!("{index}/{count}"));
            let dead_letter_gauge = match &partition {
                Some(partition) => {
                    metrics::gauge!(DEAD_LETTERS, "process_manager" => P::NAME, "partition" => partition.clone())
                }
                None => metrics::gauge!(DEAD_LETTERS, "process_manager" => P::NAME),
            };
            let shared = Arc::new(Shared {
                name: checkpoint_name
                    .strip_prefix(CHECKPOINT_PREFIX)
                    .unwrap_or(&checkpoint_name)
                    .to_owned(),
                progress: progress.clone(),
                metrics: Metrics::new(P::NAME, partition),
                instances: AtomicUsize::new(instances.len()),
                deadlines: AtomicUsize::new(timers.len()),
                skipped: AtomicU64::new(0),
                dead_letters: Mutex::new(Vec::new()),
                dead_letter_gauge,
                requests: asks,
            });
            let plan = Plan {
                kind: "process manager",
                store: self.kernel.event_store().clone(),
                filter: EventFilter::types(P::accepts),
                batch: options.batch_size,
                poll: options.poll_interval,
                checkpoint: checkpoint_name,
                checkpoints: Some(checkpoints.clone()),
                given_position: options.start_position.is_some(),
                gate: gate.clone(),
                pages: pages.clone(),
            };
            let runner = Runner::<P> {
                kernel: self.kernel.downgrade(),
                clock: self.kernel.clock().clone(),
                options: options.clone(),
                shared: shared.clone(),
                instances,
                timers,
                saved_at: std::time::Instant::now(),
                unsaved: None,
                route: (index, count),
                parked,
                requests,
            };
            runner.publish_parked();
            follow::spawn(&runtime, plan, progress, runner, None);
            parts.push(shared);
        }
        let group = Arc::new(Group {
            name: P::NAME,
            parts,
            spread,
        });
        registry.runners.lock().insert(P::NAME, group.clone());
        Ok(ProcessHandle::new(group))
    }

    /// The dead letters of process manager `name` under
    /// [`ErrorPolicy::Park`](crate::projection::ErrorPolicy::Park), parked and skipped (by
    /// position, across partitions): its runner's when one was started on this kernel, else
    /// those saved in its checkpoint. A [`DeadLetter`]'s key is the instance key.
    ///
    /// # Errors
    ///
    /// [`ProjectionError::NotFound`] when no runner of that name was started and there is no
    /// checkpoint store; [`ProjectionError::Store`] or [`ProjectionError::State`] when the
    /// checkpoint cannot be read.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        let registry = self.registry();
        if let Some(group) = registry.runners.lock().get(name).cloned() {
            return Ok(group.dead_letters());
        }
        let Some(store) = registry.checkpoints.clone() else {
            return Err(ProjectionError::NotFound(name.to_owned()));
        };
        stored_dead_letters(store.as_ref(), &format!("{CHECKPOINT_PREFIX}{name}")).await
    }

    /// Re-runs the parked events of instance `key` of process manager `name` in order, each
    /// once, sending their commands with the command ids they would have had; stops at the
    /// first that fails again (it and those after it stay parked, its error updated). Carried
    /// out by the runner at its next page or when it next reaches the head of the log, and
    /// saved in one checkpoint write. Returns how many events were handled.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::projection::{OnError, ProjectionError};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// static BROKEN: AtomicBool = AtomicBool::new(true);
    ///
    /// #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    /// struct Shipping;
    /// impl ProcessManager for Shipping {
    ///     const NAME: &'static str = "shipping";
    ///     fn accepts(event_type: &str) -> bool {
    ///         event_type == "Paid"
    ///     }
    ///     fn starts(_: &RecordedEvent) -> bool {
    ///         true
    ///     }
    ///     fn handle(&mut self, _: &RecordedEvent, _: &mut Commands) -> Result<(), ProjectionError> {
    ///         if BROKEN.load(Ordering::SeqCst) {
    ///             return Err(ProjectionError::State("the carrier is down".into()));
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let kernel = Kernel::builder().store(store.clone()).build()?;
    /// let options = ProjectionOptions::default().error_policy(OnError::park());
    /// let shipping = kernel.process_managers().start::<Shipping>(options).await?;
    /// let paid = NewEvent::new("Paid", b"{}".to_vec()).correlation_id("order-7");
    /// let done = store
    ///     .append(&StreamId::new("order", "7"), ExpectedVersion::Any, vec![paid])
    ///     .await?;
    /// shipping.wait_for(done.events[0].position).await?;
    /// let parked = kernel.process_managers().dead_letters("shipping").await?;
    /// assert_eq!(parked[0].key, "order-7");
    ///
    /// BROKEN.store(false, Ordering::SeqCst);
    /// assert_eq!(kernel.process_managers().retry("shipping", "order-7").await?, 1);
    /// assert!(shipping.dead_letters().is_empty());
    /// kernel.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ProjectionError::NotFound`] when no runner of that name was started on this kernel;
    /// [`ProjectionError::DeadLetters`] when no event of `key` is parked, an event fails again,
    /// or the runner is stopped or stands by.
    pub async fn retry(&self, name: &str, key: &str) -> Result<usize, ProjectionError> {
        let group = self.group(name)?;
        group.ask(key, Ask::Retry(key.to_owned())).await
    }

    /// Drops the parked event of instance `key` at `position` of process manager `name`
    /// without handling it, keeping `reason` in its record. Events parked behind it stay parked
    /// until [`ProcessManagers::retry`]. Saved in one checkpoint write.
    ///
    /// # Errors
    ///
    /// As for [`ProcessManagers::retry`]; [`ProjectionError::DeadLetters`] also when no event of
    /// `key` is parked at `position`.
    pub async fn skip(
        &self,
        name: &str,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        let group = self.group(name)?;
        let ask = Ask::Skip {
            key: key.to_owned(),
            position,
            reason: reason.to_owned(),
        };
        group.ask(key, ask).await.map(|_| ())
    }

    /// The runners of `name`, or [`ProjectionError::NotFound`].
    fn group(&self, name: &str) -> Result<Arc<Group>, ProjectionError> {
        self.registry()
            .runners
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))
    }

    /// The status of the runner named `name`, if one was started on this kernel.
    pub fn lookup(&self, name: &str) -> Option<ProcessStatus> {
        self.registry().runners.lock().get(name).map(|g| g.status())
    }

    /// The statuses of every runner started on this kernel.
    pub fn statuses(&self) -> Vec<ProcessStatus> {
        let mut all: Vec<_> = self
            .registry()
            .runners
            .lock()
            .values()
            .map(|g| g.status())
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
        let group = self.registry().runners.lock().get(name).cloned();
        match group {
            Some(group) => {
                group.stop().await;
                Ok(())
            }
            None => Err(ProjectionError::NotFound(name.to_owned())),
        }
    }
}
