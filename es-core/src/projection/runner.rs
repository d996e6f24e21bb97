//! Managed projection runners: catch up, then follow the log live, with durable checkpoints.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Projection, ProjectionError, apply_event};
use crate::store::{CheckpointStore, EventStore, RecordedEvent};
use crate::tracker::{TaskToken, TaskTracker};

/// What a runner does when handling an event fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Stop the runner; its status reports the error and the last position it processed.
    #[default]
    Stop,
    /// Retry the failing event with exponential backoff, up to `attempts` times, then stop.
    Retry {
        /// Retries before giving up.
        attempts: u32,
        /// The first wait; each retry doubles it.
        initial_backoff: Duration,
        /// The longest wait.
        max_backoff: Duration,
    },
    /// Skip the failing event, record it in the status, and go on.
    Skip,
}

/// How to run a projection.
#[derive(Clone)]
pub struct ProjectionOptions {
    /// Read from this position instead of resuming from the checkpoint (the state starts from
    /// `Default`).
    pub start_position: Option<u64>,
    /// Events read per batch; the checkpoint is saved after each batch.
    pub batch_size: usize,
    /// What to do when a handler fails.
    pub error_policy: ErrorPolicy,
    /// Where checkpoints go (default: the kernel's checkpoint store).
    pub checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// Save the state with each checkpoint when the projection supports it (default `true`).
    pub persist_state: bool,
    /// How often to look for new events when no notification arrives (fallback only).
    pub poll_interval: Duration,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        Self {
            start_position: None,
            batch_size: 1000,
            error_policy: ErrorPolicy::Stop,
            checkpoint_store: None,
            persist_state: true,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl ProjectionOptions {
    /// Reads from `position` instead of the checkpoint.
    #[must_use]
    pub fn start_position(mut self, position: u64) -> Self {
        self.start_position = Some(position);
        self
    }

    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Sets the error policy.
    #[must_use]
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// Uses this checkpoint store instead of the kernel's.
    #[must_use]
    pub fn checkpoint_store(mut self, store: impl CheckpointStore) -> Self {
        self.checkpoint_store = Some(Arc::new(store));
        self
    }

    /// Whether to save the state with the checkpoint.
    #[must_use]
    pub fn persist_state(mut self, persist: bool) -> Self {
        self.persist_state = persist;
        self
    }

    /// Sets the fallback poll interval.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

impl std::fmt::Debug for ProjectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionOptions")
            .field("start_position", &self.start_position)
            .field("batch_size", &self.batch_size)
            .field("error_policy", &self.error_policy)
            .field("checkpoint_store", &self.checkpoint_store.is_some())
            .field("persist_state", &self.persist_state)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// Where a runner is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionPhase {
    /// Reading a backlog.
    Running,
    /// At the head of the log, waiting for new events.
    CaughtUp,
    /// Stopped: `error` is `None` after `stop`, else why it stopped.
    Stopped {
        /// The error that stopped it, if any.
        error: Option<String>,
    },
}

/// An event the [`ErrorPolicy::Skip`] policy skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Its position.
    pub position: u64,
    /// Its type.
    pub event_type: String,
    /// Why it failed.
    pub error: String,
}

/// A runner's status, from [`Projections::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Running, caught up, or stopped.
    pub phase: ProjectionPhase,
    /// The last position processed.
    pub position: u64,
    /// How many events were skipped under [`ErrorPolicy::Skip`].
    pub skipped_count: u64,
    /// The most recent skipped events (up to 100).
    pub skipped: Vec<SkippedEvent>,
}

const SKIPPED_KEPT: usize = 100;

struct Shared<P> {
    name: &'static str,
    state: tokio::sync::Mutex<P>,
    processed: watch::Sender<u64>,
    status: Mutex<StatusInner>,
}

struct StatusInner {
    phase: ProjectionPhase,
    skipped_count: u64,
    skipped: VecDeque<SkippedEvent>,
}

/// A handle on a running projection.
pub struct ProjectionHandle<P> {
    shared: Arc<Shared<P>>,
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

fn status_of<P>(shared: &Shared<P>) -> ProjectionStatus {
    let status = shared.status.lock();
    ProjectionStatus {
        name: shared.name.to_owned(),
        phase: status.phase.clone(),
        position: *shared.processed.borrow(),
        skipped_count: status.skipped_count,
        skipped: status.skipped.iter().cloned().collect(),
    }
}

struct Entry {
    status: Box<dyn Fn() -> ProjectionStatus + Send + Sync>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
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
    runners: Mutex<Runners>,
    /// Counts the running runners, so that kernel shutdown waits for them to be gone.
    tasks: TaskTracker,
}

#[derive(Default)]
struct Runners {
    by_name: HashMap<&'static str, Entry>,
    /// Set by kernel shutdown: no runner starts after it.
    closed: bool,
}

impl Projections {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        event_store: Arc<dyn EventStore>,
        checkpoint_store: Option<Arc<dyn CheckpointStore>>,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            runtime,
            event_store,
            checkpoint_store,
            runners: Mutex::default(),
            tasks,
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
        self.runners.lock().check_can_start(P::NAME)?;
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
        runners.by_name.insert(
            P::NAME,
            Entry {
                status: Box::new(move || status_of(&for_status)),
                stop,
                task: Some(task),
            },
        );
        Ok(ProjectionHandle { shared })
    }

    /// The status of the runner named `name`, if one was started.
    pub fn lookup(&self, name: &str) -> Option<ProjectionStatus> {
        self.runners.lock().by_name.get(name).map(|e| (e.status)())
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

struct Runner<P> {
    shared: Arc<Shared<P>>,
    store: Arc<dyn EventStore>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    options: ProjectionOptions,
    stop: watch::Receiver<bool>,
    _p: PhantomData<fn() -> P>,
    /// Declared last, so it is released after the store handles (fields drop in order).
    _token: TaskToken,
}

/// Why a runner's loop ended.
enum End {
    Stopped,
    Failed(String),
}

impl<P: Projection> Runner<P> {
    async fn run(mut self) {
        let end = self.follow().await;
        let error = match end {
            End::Stopped => None,
            End::Failed(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projection stopped");
                Some(e)
            }
        };
        self.shared.status.lock().phase = ProjectionPhase::Stopped { error };
        // Wake `wait_for` callers so they see the stop.
        self.shared.processed.send_modify(|_| {});
    }

    fn set_phase(&self, phase: ProjectionPhase) {
        let mut status = self.shared.status.lock();
        if status.phase != phase {
            status.phase = phase;
        }
    }

    async fn follow(&mut self) -> End {
        let mut head = self.store.subscribe();
        let mut store_failures = 0u32;
        loop {
            if *self.stop.borrow() {
                return End::Stopped;
            }
            let next = *self.shared.processed.borrow() + 1;
            let page = match self
                .store
                .read_all_filtered(next, self.options.batch_size, P::accepts)
                .await
            {
                Ok(page) => {
                    store_failures = 0;
                    page
                }
                Err(e) => {
                    store_failures += 1;
                    if store_failures > 10 {
                        return End::Failed(format!("reading the log at {next}: {e}"));
                    }
                    tracing::warn!(projection = P::NAME, error = %e, "reading the log failed; retrying");
                    if self.pause(backoff(store_failures)).await {
                        return End::Stopped;
                    }
                    continue;
                }
            };
            if page.scanned == 0 {
                self.set_phase(ProjectionPhase::CaughtUp);
                head.borrow_and_update();
                if *head.borrow() >= next {
                    // The head moved past what was readable a moment ago (or the store
                    // publishes positions before they are readable): poll briefly.
                    if self.pause(Duration::from_millis(2)).await {
                        return End::Stopped;
                    }
                    continue;
                }
                tokio::select! {
                    _ = head.wait_for(|h| *h >= next) => {}
                    _ = self.stop.wait_for(|s| *s) => return End::Stopped,
                    () = tokio::time::sleep(self.options.poll_interval) => {}
                }
                continue;
            }
            self.set_phase(ProjectionPhase::Running);
            if let Err(e) = self.process(&page.events, page.scanned_to).await {
                return e;
            }
        }
    }

    /// Folds one page of accepted events into the state and saves the checkpoint at
    /// `scanned_to` (the page may have skipped events the projection does not handle).
    async fn process(&mut self, page: &[RecordedEvent], scanned_to: u64) -> Result<(), End> {
        let mut state = self.shared.state.lock().await;
        let mut processed = scanned_to;
        let mut outcome = Ok(());
        for event in page {
            if let Err(e) = self.apply_with_policy(&mut state, event).await {
                processed = event.position - 1;
                outcome = Err(e);
                break;
            }
        }
        if processed > *self.shared.processed.borrow() {
            if let Some(store) = &self.checkpoints {
                let encoded = if self.options.persist_state {
                    state.encode_state()
                } else {
                    None
                };
                let bytes = match encoded {
                    Some(Ok(bytes)) => Some(bytes),
                    Some(Err(e)) => return Err(End::Failed(format!("saving the state: {e}"))),
                    None => None,
                };
                if let Err(e) = store.save(P::NAME, processed, bytes).await {
                    // Without its checkpoint a batch would be handled twice after a restart.
                    return Err(End::Failed(format!(
                        "saving the checkpoint at {processed}: {e}"
                    )));
                }
            }
            drop(state);
            self.shared.processed.send_replace(processed);
        }
        outcome
    }

    async fn apply_with_policy(&self, state: &mut P, event: &RecordedEvent) -> Result<(), End> {
        let mut attempt = 0u32;
        loop {
            let error = match apply_event(state, event) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            match &self.options.error_policy {
                ErrorPolicy::Stop => return Err(End::Failed(error.to_string())),
                ErrorPolicy::Skip => {
                    tracing::warn!(projection = P::NAME, position = event.position, error = %error, "skipping an event");
                    let mut status = self.shared.status.lock();
                    status.skipped_count += 1;
                    status.skipped.push_back(SkippedEvent {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        error: error.to_string(),
                    });
                    if status.skipped.len() > SKIPPED_KEPT {
                        status.skipped.pop_front();
                    }
                    return Ok(());
                }
                ErrorPolicy::Retry {
                    attempts,
                    initial_backoff,
                    max_backoff,
                } => {
                    attempt += 1;
                    if attempt > *attempts {
                        return Err(End::Failed(format!("{error} (after {attempts} retries)")));
                    }
                    let wait = initial_backoff
                        .saturating_mul(2u32.saturating_pow(attempt - 1))
                        .min(*max_backoff);
                    tracing::warn!(projection = P::NAME, position = event.position, attempt, error = %error, "retrying an event");
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|s| *s) => return Err(End::Stopped),
                    }
                }
            }
        }
    }

    /// Sleeps, returning `true` if a stop was requested meanwhile.
    async fn pause(&mut self, wait: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return true,
        }
        *self.stop.borrow()
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << failures.min(10))).min(Duration::from_secs(5))
}
