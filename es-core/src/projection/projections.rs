//! [`Projections`]: the managed runners of a kernel, started, looked up and stopped by name.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::follow::{Progress, ProjectionPhase};
use crate::store::{CheckpointStore, EventStore};
use crate::tracker::{TaskToken, TaskTracker};

use super::any_runner::AnyRunner;
use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::group::Group;
use super::handle::ProjectionHandle;
use super::launch::{Launch, checkpoints_for, initial_parts, part_metrics};
use super::metrics::ProjectionMetricsRef;
use super::options::{ProjectionOptions, ProjectionStatus};
use super::read_model::Projection;
use super::rebuild;
use super::rebuild_parts::{self, stored_dead_letters};

/// How often the lag monitor refreshes every runner's lag gauges.
const LAG_REFRESH: Duration = Duration::from_secs(1);

struct Entry {
    runner: Arc<dyn AnyRunner>,
    /// Kept across restarts of the name (one per partition).
    metrics: Vec<ProjectionMetricsRef>,
}

/// The projection runners of a kernel: `kernel.projections()`.
///
/// Checkpoints go to the kernel's checkpoint store, or to the one given in
/// [`ProjectionOptions::checkpoint_store`]. A kernel built with `.event_store(..)` alone has no
/// checkpoint store: a runner started there is refused unless its options give one or say
/// [`ProjectionOptions::in_memory_checkpoints`] (its position is then kept in memory only, and
/// the log is read again from position 1 after every restart).
pub struct Projections {
    runtime: tokio::runtime::Handle,
    event_store: Arc<dyn EventStore>,
    checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    runners: Arc<Mutex<Runners>>,
    /// Counts the running runners, so that kernel shutdown waits for them to be gone.
    tasks: TaskTracker,
    /// Tells the lag monitor to end (dropping it does too).
    stop_monitor: watch::Sender<bool>,
    /// The kernel's clock, which stamps events: a runner's lag in time is measured with it.
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Runners {
    by_name: HashMap<&'static str, Entry>,
    /// Set by kernel shutdown: no runner starts after it.
    closed: bool,
    /// Whether the lag monitor was started (with the first runner).
    monitored: bool,
}

impl Projections {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        event_store: Arc<dyn EventStore>,
        checkpoint_store: Option<Arc<dyn CheckpointStore>>,
        tasks: TaskTracker,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            runtime,
            event_store,
            checkpoint_store,
            runners: Arc::default(),
            tasks,
            stop_monitor: watch::Sender::new(false),
            clock,
        }
    }

    /// Starts a managed runner for `P`: it resumes from its checkpoint (and saved state), catches
    /// up, then follows new events as the store announces them.
    ///
    /// Starting a projection that is running already returns a handle on the running one (its
    /// options stay as they were). A projection needs a checkpoint store (the kernel's, or
    /// [`ProjectionOptions::checkpoint_store`]): without one it is refused with
    /// [`ProjectionError::NoCheckpointStore`] unless the options say
    /// [`ProjectionOptions::in_memory_checkpoints`]. After the kernel's shutdown it fails with
    /// [`ProjectionError::Stopped`].
    pub async fn start<P: Projection>(
        &self,
        options: ProjectionOptions,
    ) -> Result<ProjectionHandle<P>, ProjectionError> {
        // A runner that stopped while some of its partitions still run is stopped whole
        // first, so that no partition ever runs twice.
        let stopped = self
            .runner(P::NAME)
            .filter(|r| matches!(r.status().phase, ProjectionPhase::Stopped { .. }));
        if let Some(stopped) = stopped {
            stopped.stop().await;
        }
        // Taken before the first await, so with the recorder of the caller's context.
        let partitions = options.partitions.max(1);
        let metrics = {
            let runners = self.runners.lock();
            if let Some(running) = runners.running::<P>()? {
                return Ok(running);
            }
            match runners.by_name.get(P::NAME) {
                Some(entry) if entry.metrics.len() == partitions as usize => entry.metrics.clone(),
                _ => part_metrics(P::NAME, partitions, self.event_store.as_ref(), &self.clock),
            }
        };
        let checkpoints = checkpoints_for(P::NAME, &options, self.checkpoint_store.as_ref())?;
        let parts = initial_parts::<P>(&options, checkpoints.as_ref()).await?;
        let mut runners = self.runners.lock();
        if let Some(running) = runners.running::<P>()? {
            return Ok(running);
        }
        // Taken under the lock that `stop_all` closes: kernel shutdown waits for this runner.
        let launch = Launch {
            store: self.event_store.clone(),
            checkpoints,
            options,
            metrics: metrics.clone(),
            tasks: self.tasks.clone(),
        };
        let handle = launch.spawn(&self.runtime, parts);
        let earlier = runners.by_name.insert(
            P::NAME,
            Entry {
                runner: handle.group.clone(),
                metrics,
            },
        );
        if let Some(earlier) = earlier {
            for metrics in &earlier.metrics {
                metrics.restarts.add(1);
            }
        }
        if !runners.monitored {
            runners.monitored = true;
            let monitor = LagMonitor {
                runners: Arc::downgrade(&self.runners),
                store: self.event_store.clone(),
                stop: self.stop_monitor.subscribe(),
                _token: self.tasks.token(),
            };
            self.runtime.spawn(monitor.run());
        }
        Ok(handle)
    }

    /// Rebuilds projection `P` from position 1 (after its code changed), while its runner, if
    /// one runs, keeps answering `state()` from the old state and following the log.
    ///
    /// The fresh state is folded aside; once it has reached the head of the log, the runner's
    /// state lock is taken just long enough to fold the events that arrived meanwhile, save the
    /// fresh state with its position as one checkpoint, and swap it in; the runner then goes
    /// on from there. Until that one write, the old checkpoint is untouched: a crash, an
    /// error or dropping the returned future in the middle leaves the old projection as it
    /// was. [`Projections::lookup`] shows the progress ([`ProjectionStatus::rebuild`]) while
    /// it runs. Without a runner, the rebuilt state is saved as the checkpoint a later `start`
    /// resumes from.
    ///
    /// The checkpoint store is chosen as for [`Projections::start`] (so refused without one,
    /// unless [`ProjectionOptions::in_memory_checkpoints`]); `batch_size` and
    /// `persist_state` apply. Returns the position the swapped-in state has processed.
    ///
    /// On a store shared by several processes that elect one runner per name (PostgreSQL),
    /// rebuild on the kernel whose runner is active (its status is not `standby`): the
    /// rebuild does not take the lease, so a rebuild elsewhere saves a checkpoint that the
    /// active runner's next save overwrites.
    ///
    /// # Errors
    ///
    /// [`ProjectionError::NoCheckpointStore`], a store error, or the first event that fails
    /// ([`ProjectionError::At`]); in every case the old projection is kept.
    pub async fn rebuild<P: Projection>(
        &self,
        options: ProjectionOptions,
    ) -> Result<u64, ProjectionError> {
        let checkpoints = checkpoints_for(P::NAME, &options, self.checkpoint_store.as_ref())?;
        let running = self.runners.lock().running::<P>()?;
        if let Some(last) = rebuild_parts::rebuild_if_partitioned(
            self.event_store.as_ref(),
            running.as_ref(),
            checkpoints.as_ref(),
            &options,
        )
        .await?
        {
            return Ok(last);
        }
        let shared = running
            .as_ref()
            .and_then(|h| h.group.parts.first())
            .map(AsRef::as_ref);
        rebuild::rebuild::<P>(
            self.event_store.as_ref(),
            checkpoints.as_ref(),
            shared,
            &options,
        )
        .await
    }

    /// The status of the runner named `name`, if one was started.
    pub fn lookup(&self, name: &str) -> Option<ProjectionStatus> {
        self.runners
            .lock()
            .by_name
            .get(name)
            .map(|e| e.runner.status())
    }

    /// The status of every runner started on this kernel, by name.
    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        let mut statuses: Vec<ProjectionStatus> = self
            .runners
            .lock()
            .by_name
            .values()
            .map(|e| e.runner.status())
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        statuses
    }

    /// The names of the runners started on this kernel.
    pub fn names(&self) -> Vec<String> {
        self.runners
            .lock()
            .by_name
            .keys()
            .map(|k| (*k).to_owned())
            .collect()
    }

    /// The dead letters of projection `name` ([`ErrorPolicy::Park`](super::ErrorPolicy::Park)),
    /// parked and skipped, in the order they were parked: its runner's when one was started
    /// on this kernel, else those saved in its checkpoint in the kernel's checkpoint store.
    ///
    /// # Errors
    ///
    /// A store error, or a corrupt record ([`ProjectionError::State`]).
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, ProjectionError> {
        if let Some(runner) = self.runner(name) {
            return Ok(runner.dead_letters());
        }
        let Some(store) = &self.checkpoint_store else {
            return Ok(Vec::new());
        };
        stored_dead_letters(store.as_ref(), name).await
    }

    /// Re-runs the parked events of `key` (an event's stream, `type/id`) of the running
    /// projection `name` in order, each once, under the runner's state lock (the runner waits
    /// meanwhile), then saves the state and the remaining dead letters in one checkpoint write.
    /// Returns how many it applied. The first event that fails again stays parked, with its new
    /// error, and so do those behind it: the call then returns that error.
    ///
    /// # Errors
    ///
    /// [`ProjectionError::NotFound`] without a runner of that name,
    /// [`ProjectionError::DeadLetters`] when nothing of `key` is parked or the runner is
    /// stopped or stands by, the failure of a parked event ([`ProjectionError::At`]), or a
    /// store error.
    pub async fn retry(&self, name: &str, key: &str) -> Result<usize, ProjectionError> {
        let runner = self
            .runner(name)
            .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))?;
        runner.retry(key).await
    }

    /// Drops the parked event of `key` at `position` of the running projection `name` without
    /// applying it; its record stays, with `reason`, among the dead letters (the newest 1,000
    /// skipped records are kept). Events parked behind it stay parked until
    /// [`Projections::retry`]. Saved in one checkpoint write with the state.
    ///
    /// # Errors
    ///
    /// As for [`Projections::retry`]; [`ProjectionError::DeadLetters`] also when no event of
    /// `key` is parked at `position`.
    pub async fn skip(
        &self,
        name: &str,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        let runner = self
            .runner(name)
            .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))?;
        runner.skip(key, position, reason).await
    }

    /// The runner started under `name` on this kernel, if one was.
    fn runner(&self, name: &str) -> Option<Arc<dyn AnyRunner>> {
        self.runners
            .lock()
            .by_name
            .get(name)
            .map(|e| e.runner.clone())
    }

    /// Stops the runner named `name` after its current batch and waits for it (its status
    /// stays available to [`Projections::lookup`]).
    pub async fn stop(&self, name: &str) -> Result<(), ProjectionError> {
        let runner = {
            let runners = self.runners.lock();
            let entry = runners
                .by_name
                .get(name)
                .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))?;
            entry.runner.clone()
        };
        runner.stop().await;
        Ok(())
    }

    /// Stops every runner and refuses new ones (kernel shutdown, which then waits for the
    /// runners' task tokens).
    pub(crate) async fn stop_all(&self) {
        let names: Vec<&'static str> = {
            let mut runners = self.runners.lock();
            runners.closed = true;
            runners.by_name.keys().copied().collect()
        };
        self.stop_monitor.send_replace(true);
        for name in names {
            let _ = self.stop(name).await;
        }
    }
}

impl Runners {
    /// The handle of the running runner of `P`, if one runs; refused once the kernel is shut
    /// down, or when a runner of another type runs under `P`'s name.
    fn running<P: Projection>(&self) -> Result<Option<ProjectionHandle<P>>, ProjectionError> {
        if self.closed {
            return Err(ProjectionError::Stopped {
                name: P::NAME.to_owned(),
                position: 0,
                reason: "the kernel is shut down".to_owned(),
            });
        }
        let Some(entry) = self.by_name.get(P::NAME) else {
            return Ok(None);
        };
        if matches!(entry.runner.status().phase, ProjectionPhase::Stopped { .. }) {
            return Ok(None);
        }
        match entry.runner.clone().into_any().downcast::<Group<P>>() {
            Ok(group) => Ok(Some(ProjectionHandle { group })),
            Err(_) => Err(ProjectionError::AlreadyRunning(P::NAME.to_owned())),
        }
    }
}

/// Keeps the lag of every runner current, stopped ones included: refreshes the lag gauges
/// each [`LAG_REFRESH`], and reads the timestamp of the oldest event a runner has not processed
/// when the runner has not seen it (a stopped or stuck runner, with events after it).
struct LagMonitor {
    runners: std::sync::Weak<Mutex<Runners>>,
    store: Arc<dyn EventStore>,
    stop: watch::Receiver<bool>,
    /// Declared last, so it is released after the store handle (fields drop in order).
    _token: TaskToken,
}

impl LagMonitor {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(LAG_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // A stop request, or the kernel was dropped.
                _ = self.stop.wait_for(|stop| *stop) => return,
            }
            let Some(runners) = self.runners.upgrade() else {
                return;
            };
            // The status refreshes the gauges; the lag in time may need one event read.
            let unknown: Vec<(ProjectionMetricsRef, Arc<Progress>, u64)> = runners
                .lock()
                .by_name
                .values()
                .flat_map(|entry| entry.runner.lag_sources())
                .map(|(metrics, progress)| {
                    let position = progress.position();
                    (metrics, progress, position)
                })
                .filter(|(metrics, _, position)| metrics.needs_pending(*position))
                .collect();
            drop(runners);
            for (metrics, progress, position) in unknown {
                match self.store.read_all(position + 1, 1).await {
                    Ok(events) => {
                        if let Some(first) = events.first() {
                            metrics.note_found(first.position, first.timestamp);
                            // At the runner's own position: it may have moved on during the
                            // read, and a lag at the older one would overwrite its figure.
                            metrics.refresh(progress.position());
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "projection lag: cannot read the log");
                    }
                }
            }
        }
    }
}
