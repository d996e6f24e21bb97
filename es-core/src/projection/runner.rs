//! A managed runner: catches up, then follows the log live, saving checkpoints after each
//! batch and applying the error policy to failing events.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::handle::Shared;
use super::launch::restore;
use super::options::{ErrorPolicy, ProjectionOptions, ProjectionPhase, SKIPPED_KEPT, SkippedEvent};
use super::{Projection, ProjectionError, apply_event};
use crate::store::{CheckpointStore, EventStore, Lease, RecordedEvent, RunnerLease};
use crate::tracker::TaskToken;

/// How often (in events) a runner checks for a stop request inside a batch.
const STOP_CHECK_EVERY: usize = 64;
/// How many times a runner tries to save one checkpoint before it stops.
const CHECKPOINT_ATTEMPTS: u32 = 10;

/// One projection's runner task: what it reads, where it saves, when it stops.
pub(super) struct Runner<P> {
    pub(super) shared: Arc<Shared<P>>,
    pub(super) store: Arc<dyn EventStore>,
    pub(super) checkpoints: Option<Arc<dyn CheckpointStore>>,
    pub(super) options: ProjectionOptions,
    pub(super) stop: watch::Receiver<bool>,
    /// Its part in electing one active runner per name among the processes sharing its
    /// checkpoint store (`None` without a checkpoint store: positions in memory only).
    pub(super) election: Option<Election>,
    /// Whether taking the lease reloads the checkpoint. False until the first takeover when
    /// the options gave a `start_position`, which that first run honours.
    pub(super) resume_on_takeover: bool,
    pub(super) _p: PhantomData<fn() -> P>,
    /// Declared last, so it is released after the store handles (fields drop in order).
    pub(super) _token: TaskToken,
}

impl<P> Drop for Runner<P> {
    /// A runner whose task ends without recording why (a panic outside the handlers, or the
    /// runtime dropping the task) still leaves `lookup` and `wait_for` saying it stopped, rather
    /// than reporting `Running` forever.
    fn drop(&mut self) {
        let mut status = self.shared.status.lock();
        if !matches!(status.phase, ProjectionPhase::Stopped { .. }) {
            status.phase = ProjectionPhase::Stopped {
                error: Some(
                    "the runner's task ended unexpectedly (a panic outside the handlers, or \
                     its runtime shut down)"
                        .to_owned(),
                ),
            };
            drop(status);
            self.shared.processed.send_modify(|_| {});
        }
    }
}

/// Why a runner's loop ended.
enum End {
    Stopped,
    Failed(String),
}

impl<P: Projection> Runner<P> {
    /// The runner's task: follows the log until stopped or failed, then records why.
    pub(super) async fn run(mut self) {
        let end = self.follow().await;
        let error = match end {
            End::Stopped => None,
            End::Failed(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projection stopped");
                Some(e)
            }
        };
        self.finish(error);
    }

    /// Records that the runner stopped (with why, when it failed) and wakes `wait_for` callers
    /// so they see it.
    fn finish(&self, error: Option<String>) {
        self.shared.status.lock().phase = ProjectionPhase::Stopped { error };
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
            if let Err(end) = self.ensure_lease().await {
                return end;
            }
            let next = *self.shared.processed.borrow() + 1;
            let page = match self
                .store
                .read_all_matching(next, self.options.batch_size, P::event_filter())
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
                self.shared.metrics.lag(next - 1);
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
            // While the page is processed, its first event is the oldest one not processed:
            // the lag gauges say how old it is. (The next read, or reaching the head, updates
            // them again.)
            let metrics = self.shared.metrics.clone();
            if let Some(first) = page.events.first() {
                metrics.note_pending(first.position, first.timestamp);
            }
            metrics.lag(next - 1);
            let filtered = page.scanned.saturating_sub(page.events.len());
            if let Err(e) = self
                .process(next - 1, &page.events, page.scanned_to, filtered)
                .await
            {
                return e;
            }
        }
    }

    /// Folds one page of accepted events into the state and saves the checkpoint at
    /// `scanned_to` (the page skipped `filtered` events the projection does not handle). The
    /// counters and lag gauges are updated before the new position is published, so whoever
    /// waits for it sees them.
    async fn process(
        &mut self,
        read_after: u64,
        page: &[RecordedEvent],
        scanned_to: u64,
        filtered: usize,
    ) -> Result<(), End> {
        let mut state = self.shared.state.lock().await;
        if *self.shared.processed.borrow() != read_after {
            // A rebuild swapped in a state that includes this page: read on from its position.
            return Ok(());
        }
        let mut processed = scanned_to;
        let mut outcome = Ok(());
        let mut handled = 0;
        for (i, event) in page.iter().enumerate() {
            // A stop is honoured between events, so a large batch never holds up `stop` or
            // `Kernel::shutdown`; what was handled so far is saved below.
            if i % STOP_CHECK_EVERY == STOP_CHECK_EVERY - 1 && *self.stop.borrow() {
                processed = event.position - 1;
                outcome = Err(End::Stopped);
                break;
            }
            match self.apply_with_policy(&mut state, event).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => {
                    processed = event.position - 1;
                    outcome = Err(e);
                    break;
                }
            }
        }
        self.shared.metrics.handled.add(handled);
        if outcome.is_ok() {
            self.shared.metrics.filtered.add(filtered as u64);
        }
        if self.election.as_ref().is_some_and(Election::is_lost) {
            // Another process may hold the lease and have saved further: its checkpoint wins.
            // This page is neither saved nor published; the next takeover reloads the
            // checkpoint.
            return outcome;
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
                self.save_checkpoint(store.as_ref(), processed, bytes)
                    .await?;
            }
            drop(state);
            self.shared.metrics.lag(processed);
            self.shared.processed.send_replace(processed);
        }
        outcome
    }

    /// Makes sure this runner may run. On a checkpoint store that elects one runner per name
    /// among processes (PostgreSQL), waits as a standby until it holds the lease for its
    /// checkpoint, then resumes from the checkpoint the previous holder saved (what this runner
    /// handled but did not save is dropped). Other stores cost one check per batch.
    async fn ensure_lease(&mut self) -> Result<(), End> {
        let (Some(election), Some(store)) = (self.election.as_mut(), self.checkpoints.as_ref())
        else {
            return Ok(());
        };
        if election.may_run() {
            return Ok(());
        }
        let shared = &self.shared;
        let standby = |on: bool| {
            let mut status = shared.status.lock();
            status.standby = on;
            // A standby is not caught up: it processes nothing until it takes over.
            if on && status.phase == ProjectionPhase::CaughtUp {
                status.phase = ProjectionPhase::Running;
            }
        };
        match election
            .wait_until_elected(store.as_ref(), &self.stop, &standby)
            .await
        {
            Err(()) => return Err(End::Stopped),
            Ok(Elected::NotNeeded) => {}
            Ok(Elected::TookOver) => {
                if self.resume_on_takeover {
                    self.resume_from_checkpoint().await?;
                }
                self.resume_on_takeover = true;
            }
        }
        self.shared.status.lock().standby = false;
        Ok(())
    }

    /// Reloads state and position from the checkpoint (after taking the lease), retrying a
    /// failing store; a state that cannot be restored stops the runner.
    async fn resume_from_checkpoint(&mut self) -> Result<(), End> {
        let Some(store) = self.checkpoints.clone() else {
            return Ok(());
        };
        let mut failures = 0u32;
        let (state, position) = loop {
            match restore::<P>(store.as_ref(), self.options.persist_state).await {
                Ok(restored) => break restored,
                Err(ProjectionError::Store(e)) => {
                    failures += 1;
                    if failures >= CHECKPOINT_ATTEMPTS {
                        return Err(End::Failed(format!(
                            "loading the checkpoint after taking the lease: {e} (after \
                             {failures} attempts)"
                        )));
                    }
                    tracing::warn!(projection = P::NAME, error = %e, "loading the checkpoint failed; retrying");
                    if self.pause(backoff(failures)).await {
                        return Err(End::Stopped);
                    }
                }
                Err(e) => return Err(End::Failed(e.to_string())),
            }
        };
        let mut current = self.shared.state.lock().await;
        *current = state;
        drop(current);
        self.shared.metrics.lag(position);
        self.shared.processed.send_replace(position);
        Ok(())
    }

    /// Saves the checkpoint, retrying with backoff: a save is an idempotent upsert, so a lost
    /// connection or an unknown outcome is simply written again. Only after
    /// [`CHECKPOINT_ATTEMPTS`] failures does the runner stop (without its checkpoint a batch
    /// would be handled twice after a restart).
    async fn save_checkpoint(
        &self,
        store: &dyn CheckpointStore,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), End> {
        save_checkpoint_retrying(store, P::NAME, position, state, &self.stop)
            .await
            .map_err(End::from)
    }

    /// Applies one event under the error policy: `Ok(true)` when it was handled, `Ok(false)`
    /// when it was skipped.
    async fn apply_with_policy(&self, state: &mut P, event: &RecordedEvent) -> Result<bool, End> {
        let mut attempt = 0u32;
        loop {
            let error = match apply_event(state, event) {
                Ok(()) => return Ok(true),
                Err(e) => e,
            };
            match &self.options.error_policy {
                ErrorPolicy::Stop => return Err(End::Failed(error.to_string())),
                ErrorPolicy::Skip => {
                    tracing::warn!(projection = P::NAME, position = event.position, error = %error, "skipping an event");
                    self.shared.metrics.error_skipped.increment(1);
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
                    return Ok(false);
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
        pause_unless_stopped(&self.stop, wait).await
    }
}

/// The wait before retry number `failures + 1`: 20 ms doubling, at most 5 s.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << failures.min(10))).min(Duration::from_secs(5))
}

/// Why [`save_checkpoint_retrying`] gave up.
pub(crate) enum SaveEnd {
    /// The runner was asked to stop while waiting to retry.
    Stopped,
    /// The store refused [`CHECKPOINT_ATTEMPTS`] times; the message says where and why.
    Failed(String),
}

impl From<SaveEnd> for End {
    fn from(end: SaveEnd) -> Self {
        match end {
            SaveEnd::Stopped => End::Stopped,
            SaveEnd::Failed(message) => End::Failed(message),
        }
    }
}

/// Saves checkpoint `name` at `position`, retrying with backoff: a save is an idempotent
/// upsert, so a lost connection or an unknown outcome is simply written again. Gives up after
/// [`CHECKPOINT_ATTEMPTS`] failures, or when `stop` turns true during a wait. Projection and
/// process-manager runners both save through it.
pub(crate) async fn save_checkpoint_retrying(
    store: &dyn CheckpointStore,
    name: &str,
    position: u64,
    state: Option<Vec<u8>>,
    stop: &watch::Receiver<bool>,
) -> Result<(), SaveEnd> {
    let mut failures = 0u32;
    loop {
        let error = match store.save(name, position, state.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        failures += 1;
        if failures >= CHECKPOINT_ATTEMPTS {
            return Err(SaveEnd::Failed(format!(
                "saving the checkpoint at {position}: {error} (after {failures} attempts)"
            )));
        }
        tracing::warn!(runner = name, position, error = %error, "saving the checkpoint failed; retrying");
        if pause_unless_stopped(stop, backoff(failures)).await {
            return Err(SaveEnd::Stopped);
        }
    }
}

/// Sleeps `wait`, cut short by a stop; returns whether a stop was requested. Every runner
/// waits through it between retries.
pub(crate) async fn pause_unless_stopped(stop: &watch::Receiver<bool>, wait: Duration) -> bool {
    let mut watching = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = watching.wait_for(|s| *s) => return true,
    }
    *stop.borrow()
}

/// How often a standby runner asks for the lease.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(500);

/// A runner's part in electing one active runner per name among the processes sharing a
/// checkpoint store ([`CheckpointStore::try_lease`]; on PostgreSQL an advisory lock). Projection
/// and process-manager runners both hold one, named after their checkpoint (a process manager's
/// checkpoint name is prefixed `process:`, so the two kinds never share a lease).
pub(crate) struct Election {
    /// The lease name: the runner's checkpoint name.
    name: String,
    /// The right to run, while this runner holds it.
    lease: Option<RunnerLease>,
    /// Whether the store elects runners (`None`: not asked yet).
    elects: Option<bool>,
}

/// What [`Election::wait_until_elected`] found.
pub(crate) enum Elected {
    /// The store elects no runner (it is not shared between processes): run as always.
    NotNeeded,
    /// This runner just took the lease: it must resume from the checkpoint the previous
    /// holder saved, dropping whatever it handled but did not save.
    TookOver,
}

impl Election {
    /// An election for the runner whose checkpoint is `name`.
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            lease: None,
            elects: None,
        }
    }

    /// Whether the runner may go on without asking (no await, so it can be checked every
    /// batch): its store elects no runner, or it holds a lease that is not lost.
    pub(crate) fn may_run(&self) -> bool {
        match &self.lease {
            Some(lease) => !lease.is_lost(),
            None => self.elects == Some(false),
        }
    }

    /// Whether the lease this runner held is lost: it must not save its checkpoint any more
    /// (another process may hold the lease, and its checkpoint wins).
    pub(crate) fn is_lost(&self) -> bool {
        self.lease.as_ref().is_some_and(RunnerLease::is_lost)
    }

    /// Waits, as a standby, until the runner may run: asks `store` for the lease every
    /// [`STANDBY_POLL`] while another process holds it (or the store cannot be asked), calling
    /// `standby(true)` while it waits. A lost lease is given up first. Returns `Err(())` when a
    /// stop is requested while standing by. Call it when [`Election::may_run`] is false.
    pub(crate) async fn wait_until_elected(
        &mut self,
        store: &dyn CheckpointStore,
        stop: &watch::Receiver<bool>,
        standby: &(dyn Fn(bool) + Send + Sync),
    ) -> Result<Elected, ()> {
        if self.lease.take().is_some() {
            tracing::warn!(runner = %self.name, "lost the runner lease; standing by");
            standby(true);
        }
        loop {
            match store.try_lease(&self.name).await {
                Ok(Lease::NotNeeded) => {
                    self.elects = Some(false);
                    return Ok(Elected::NotNeeded);
                }
                Ok(Lease::Acquired(lease)) => {
                    self.elects = Some(true);
                    self.lease = Some(lease);
                    tracing::info!(runner = %self.name, "holding the runner lease");
                    return Ok(Elected::TookOver);
                }
                Ok(Lease::HeldElsewhere) => {
                    self.elects = Some(true);
                    standby(true);
                }
                Err(e) => {
                    tracing::warn!(runner = %self.name, error = %e, "asking for the runner lease failed");
                    standby(true);
                }
            }
            if pause_unless_stopped(stop, STANDBY_POLL).await {
                return Err(());
            }
        }
    }
}
