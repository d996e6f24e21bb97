//! [`Projections`]: the managed runners of a kernel, started, looked up and stopped by name.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::handle::{ProjectionHandle, Shared, StatusInner, status_of};
use super::options::{ProjectionOptions, ProjectionPhase, ProjectionStatus};
use super::runner::Runner;
use super::{Projection, ProjectionError};
use crate::clock::Clock;
use crate::metrics::{ProjectionMetrics, ProjectionMetricsRef};
use crate::store::{CheckpointStore, EventStore};
use crate::tracker::{TaskToken, TaskTracker};

/// How often the lag monitor refreshes every runner's lag gauges.
const LAG_REFRESH: Duration = Duration::from_secs(1);

struct Entry {
    status: Box<dyn Fn() -> ProjectionStatus + Send + Sync>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// Kept across restarts of the name.
    metrics: ProjectionMetricsRef,
}

/// The projection runners of a kernel: `kernel.projections()`.
///
/// Checkpoints go to the kernel's checkpoint store, or to the one given in
/// [`ProjectionOptions::checkpoint_store`]. A kernel built with `.event_store(..)` alone has no
/// checkpoint store: a runner started without one keeps its position in memory only, so it
/// reads the log again from position 1 after every restart.
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
    /// Without a checkpoint store (see [`Projections`]) it starts from position 1 and saves no
    /// checkpoint. After the kernel's shutdown it fails with [`ProjectionError::Stopped`].
    pub async fn start<P: Projection>(
        &self,
        options: ProjectionOptions,
    ) -> Result<ProjectionHandle<P>, ProjectionError> {
        // Taken before the first await, so with the recorder of the caller's context.
        let metrics = {
            let runners = self.runners.lock();
            runners.check_can_start(P::NAME)?;
            match runners.by_name.get(P::NAME) {
                Some(entry) => entry.metrics.clone(),
                None => Arc::new(ProjectionMetrics::new(
                    P::NAME,
                    self.event_store.subscribe(),
                    self.clock.clone(),
                )),
            }
        };
        let checkpoints = options
            .checkpoint_store
            .clone()
            .or_else(|| self.checkpoint_store.clone());
        let (state, position) = match (&options.start_position, &checkpoints) {
            (Some(start), _) => (P::default(), start.saturating_sub(1)),
            (None, Some(store)) => restore::<P>(store.as_ref(), options.persist_state).await?,
            (None, None) => (P::default(), 0),
        };
        let shared = Arc::new(Shared {
            name: P::NAME,
            state: tokio::sync::Mutex::new(state),
            processed: watch::Sender::new(position),
            status: Mutex::new(StatusInner {
                phase: ProjectionPhase::Running,
                skipped_count: 0,
                skipped: VecDeque::new(),
            }),
            metrics: metrics.clone(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut runners = self.runners.lock();
        runners.check_can_start(P::NAME)?;
        // Taken under the lock that `stop_all` closes: kernel shutdown waits for this runner.
        let runner = Runner {
            shared: shared.clone(),
            store: self.event_store.clone(),
            checkpoints,
            options,
            stop: stop_rx,
            _p: PhantomData,
            _token: self.tasks.token(),
        };
        let task = self.runtime.spawn(runner.run());
        let for_status = shared.clone();
        let earlier = runners.by_name.insert(
            P::NAME,
            Entry {
                status: Box::new(move || status_of(&for_status)),
                stop,
                task: Some(task),
                metrics,
            },
        );
        if let Some(earlier) = earlier {
            earlier.metrics.restarts.add(1);
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
        Ok(ProjectionHandle { shared })
    }

    /// The status of the runner named `name`, if one was started.
    pub fn lookup(&self, name: &str) -> Option<ProjectionStatus> {
        self.runners.lock().by_name.get(name).map(|e| (e.status)())
    }

    /// The status of every runner started on this kernel, by name.
    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        let mut statuses: Vec<ProjectionStatus> = self
            .runners
            .lock()
            .by_name
            .values()
            .map(|e| (e.status)())
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

    /// Stops the runner named `name` after its current batch and waits for it (its status
    /// stays available to [`Projections::lookup`]).
    pub async fn stop(&self, name: &str) -> Result<(), ProjectionError> {
        let task = {
            let mut runners = self.runners.lock();
            let entry = runners
                .by_name
                .get_mut(name)
                .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))?;
            entry.stop.send_replace(true);
            entry.task.take()
        };
        if let Some(task) = task {
            let _ = task.await;
        }
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
    /// Refuses a runner named `name` while one runs, or once the kernel is shut down.
    fn check_can_start(&self, name: &'static str) -> Result<(), ProjectionError> {
        if self.closed {
            return Err(ProjectionError::Stopped {
                name: name.to_owned(),
                position: 0,
                reason: "the kernel is shut down".to_owned(),
            });
        }
        if let Some(entry) = self.by_name.get(name)
            && !matches!((entry.status)().phase, ProjectionPhase::Stopped { .. })
        {
            return Err(ProjectionError::AlreadyRunning(name.to_owned()));
        }
        Ok(())
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
            let unknown: Vec<(ProjectionMetricsRef, u64)> = runners
                .lock()
                .by_name
                .values()
                .filter_map(|entry| {
                    let position = (entry.status)().position;
                    entry
                        .metrics
                        .needs_pending(position)
                        .then(|| (entry.metrics.clone(), position))
                })
                .collect();
            drop(runners);
            for (metrics, position) in unknown {
                match self.store.read_all(position + 1, 1).await {
                    Ok(events) => {
                        if let Some(first) = events.first() {
                            metrics.note_pending(first.position, first.timestamp);
                            metrics.lag(position);
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

async fn restore<P: Projection>(
    store: &dyn CheckpointStore,
    persist: bool,
) -> Result<(P, u64), ProjectionError> {
    let Some(checkpoint) = store.load(P::NAME).await? else {
        return Ok((P::default(), 0));
    };
    if !persist {
        return Ok((P::default(), checkpoint.position));
    }
    match checkpoint.state.as_deref().map(P::decode_state) {
        Some(Some(Ok(state))) => Ok((state, checkpoint.position)),
        Some(Some(Err(e))) => Err(ProjectionError::State(format!(
            "the saved state of `{}` at position {} cannot be restored: {e}",
            P::NAME,
            checkpoint.position
        ))),
        // Nothing saved, or a projection that does not persist its state: it keeps its own
        // read model elsewhere and only needs the position.
        Some(None) | None => Ok((P::default(), checkpoint.position)),
    }
}
