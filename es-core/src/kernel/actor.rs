//! One actor per live aggregate: a task that owns the state and a mailbox.
//!
//! The registry maps aggregate ids to mailboxes in a concurrent map, so no single task sits on
//! every command's path. An actor takes every command waiting in its mailbox, handles them in
//! order against the evolving state, appends all their events in one `append` with the version
//! it started from, and only then answers each. When it stops (passivation, a panic, shutdown)
//! it closes its mailbox and hands the commands still queued back to their dispatchers, which
//! wait for it to be gone before starting a fresh actor: a command is never lost and never runs
//! on stale state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::aggregate::Aggregate;
use crate::event::EventSet;
use crate::store::{ExpectedVersion, NewEvent, Snapshot, StoreError, StreamId};

use super::handle::KernelInner;
use super::mailbox::{Mailbox, Signals};
use super::tracker::TaskToken;
use super::{Committed, DispatchError, DispatchOptions};

/// The live actors of one aggregate type.
pub(crate) struct Registry<A: Aggregate> {
    slots: DashMap<String, Arc<Slot<A>>, foldhash::fast::RandomState>,
    signals: Arc<Signals>,
}

/// A registry seen without its aggregate type, for what the kernel does to all actors.
pub(crate) trait AnyRegistry: Send + Sync + 'static {
    /// The registry itself, to downcast to `Registry<A>`.
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync);
    /// Asks every live actor to stop once it has handled what is already in its mailbox.
    fn stop_all(&self);
    /// Offers passivation to every actor idle since before `idle_since` (kernel time, µs).
    fn sweep(&self, idle_since: u64);
}

impl<A: Aggregate> AnyRegistry for Registry<A>
where
    A::Command: Clone,
{
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }

    fn stop_all(&self) {
        for slot in self.slots.iter() {
            // An actor that already stopped has closed its mailbox: nothing to do.
            slot.mailbox.push_control(Msg::Stop);
        }
    }

    fn sweep(&self, idle_since: u64) {
        for slot in self.slots.iter() {
            if slot.mailbox.last_active() <= idle_since {
                slot.mailbox.offer_if_idle(Msg::Passivate);
            }
        }
    }
}

/// One live actor: its generation (to tell it from a successor) and its mailbox.
struct Slot<A: Aggregate> {
    generation: u64,
    mailbox: Mailbox<Msg<A>>,
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

type Options = Option<Box<DispatchOptions>>;

enum Msg<A: Aggregate> {
    Command {
        command: A::Command,
        options: Options,
        reply: oneshot::Sender<Reply<A>>,
    },
    State {
        reply: oneshot::Sender<Option<Result<A, DispatchError<A::Error>>>>,
    },
    /// The kernel is shutting down: stop after what is already queued.
    Stop,
    /// The sweeper saw the actor idle: stop, unless something arrived since.
    Passivate,
}

enum Reply<A: Aggregate> {
    Done(Result<Committed, DispatchError<A::Error>>),
    /// The actor stopped before handling the command: send it again to a fresh actor.
    Retry(A::Command, Options),
}

impl<A: Aggregate> Registry<A>
where
    A::Command: Clone,
{
    pub(crate) fn new() -> Self {
        Self {
            slots: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            signals: Arc::default(),
        }
    }

    fn slot(&self, kernel: &Arc<KernelInner>, id: &str) -> Arc<Slot<A>> {
        if let Some(slot) = self.slots.get(id) {
            return slot.clone();
        }
        self.slots
            .entry(id.to_owned())
            .or_insert_with(|| spawn_actor::<A>(kernel, &self.signals, id))
            .clone()
    }

    fn remove(&self, id: &str, generation: u64) {
        self.slots
            .remove_if(id, |_, slot| slot.generation == generation);
    }
}

pub(crate) async fn dispatch<A: Aggregate>(
    kernel: &Arc<KernelInner>,
    registry: &Registry<A>,
    id: &str,
    mut command: A::Command,
    mut options: Options,
) -> Result<Committed, DispatchError<A::Error>>
where
    A::Command: Clone,
{
    loop {
        if kernel.is_shut_down() {
            return Err(DispatchError::Shutdown);
        }
        let slot = registry.slot(kernel, id);
        let (reply, answer) = oneshot::channel();
        let msg = Msg::Command {
            command,
            options,
            reply,
        };
        match slot.mailbox.send(&registry.signals, msg).await {
            Ok(()) => match answer.await {
                Ok(Reply::Done(result)) => return result,
                Ok(Reply::Retry(c, o)) => (command, options) = (c, o),
                Err(_) => return Err(DispatchError::Shutdown),
            },
            Err(Msg::Command {
                command: c,
                options: o,
                ..
            }) => (command, options) = (c, o),
            Err(_) => return Err(DispatchError::Shutdown),
        }
        slot.mailbox.wait_stopped(&registry.signals).await;
        registry.remove(id, slot.generation);
    }
}

pub(crate) async fn state<A: Aggregate>(
    kernel: &Arc<KernelInner>,
    registry: &Registry<A>,
    id: &str,
) -> Result<A, DispatchError<A::Error>>
where
    A::Command: Clone,
{
    loop {
        if kernel.is_shut_down() {
            return Err(DispatchError::Shutdown);
        }
        let slot = registry.slot(kernel, id);
        let (reply, answer) = oneshot::channel();
        if slot
            .mailbox
            .send(&registry.signals, Msg::State { reply })
            .await
            .is_ok()
        {
            match answer.await {
                Ok(Some(result)) => return result,
                Ok(None) => {}
                Err(_) => return Err(DispatchError::Shutdown),
            }
        }
        slot.mailbox.wait_stopped(&registry.signals).await;
        registry.remove(id, slot.generation);
    }
}

fn spawn_actor<A: Aggregate>(
    kernel: &Arc<KernelInner>,
    signals: &Arc<Signals>,
    id: &str,
) -> Arc<Slot<A>>
where
    A::Command: Clone,
{
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let slot = Arc::new(Slot {
        generation,
        mailbox: Mailbox::new(kernel.config.mailbox, kernel.now_micros()),
    });
    let actor = Actor::<A> {
        kernel: kernel.clone(),
        stream: StreamId::new(A::TYPE, id),
        generation,
        state: None,
    };
    kernel.live.fetch_add(1, Ordering::SeqCst);
    let token = kernel.tasks.token();
    // The task's future is the actor's own (no wrapping block), so an idle actor's task holds
    // one copy of its fields.
    kernel
        .runtime
        .spawn(actor.run(slot.clone(), signals.clone(), token));
    if kernel.is_shut_down() {
        // Shutdown began after our dispatcher looked: it may not have seen this actor.
        slot.mailbox.push_control(Msg::Stop);
    }
    slot
}

struct Actor<A: Aggregate> {
    kernel: Arc<KernelInner>,
    stream: StreamId,
    generation: u64,
    /// The state and its version; `None` until loaded, and after anything that may have left
    /// it out of step with the store.
    state: Option<(A, u64)>,
}

/// How a stopping actor answers the commands still queued.
#[derive(Clone, Copy)]
enum Exit {
    /// Hand them back: a fresh actor will handle them.
    Retry,
    /// The kernel is shutting down.
    Shutdown,
}

/// One command of a batch, while the batch is being decided.
struct Job<A: Aggregate> {
    command: A::Command,
    options: Options,
    reply: oneshot::Sender<Reply<A>>,
}

enum Outcome<E> {
    /// Accepted: `count` events of the batch, leaving the stream at `version`.
    Events {
        count: usize,
        version: u64,
    },
    Rejected(E),
    Conflict {
        expected: u64,
        actual: u64,
    },
    Failed(StoreError),
}

enum Flow {
    Continue,
    /// The actor must stop (a panic left its state unknown, or it was idle).
    Stop,
    /// The kernel asked the actor to stop.
    Shutdown,
}

/// Failure while loading the state.
enum LoadError {
    Store(StoreError),
    Panicked(String),
}

impl<A: Aggregate> Actor<A>
where
    A::Command: Clone,
{
    async fn run(mut self, slot: Arc<Slot<A>>, signals: Arc<Signals>, token: TaskToken) {
        let max_batch = self.kernel.config.max_batch;
        let mut batch = Vec::new();
        let exit = loop {
            slot.mailbox
                .recv_batch(&signals, max_batch, &mut batch)
                .await;
            // Boxed so that an idle actor's task does not carry the batch's state machine.
            let flow = Box::pin(self.handle_batch(std::mem::take(&mut batch))).await;
            slot.mailbox.touch(self.kernel.now_micros());
            match flow {
                Flow::Continue => {}
                Flow::Stop => break Exit::Retry,
                Flow::Shutdown => break Exit::Shutdown,
            }
        };
        if matches!(exit, Exit::Retry) {
            tracing::debug!(stream = %self.stream, "actor stopping");
        }
        for msg in slot.mailbox.close(&signals) {
            match (msg, exit) {
                (Msg::Command { reply, .. }, Exit::Shutdown) => {
                    let _ = reply.send(Reply::Done(Err(DispatchError::Shutdown)));
                }
                (
                    Msg::Command {
                        command,
                        options,
                        reply,
                    },
                    Exit::Retry,
                ) => {
                    let _ = reply.send(Reply::Retry(command, options));
                }
                (Msg::State { reply }, Exit::Shutdown) => {
                    let _ = reply.send(Some(Err(DispatchError::Shutdown)));
                }
                (Msg::State { reply }, Exit::Retry) => {
                    let _ = reply.send(None);
                }
                (Msg::Stop | Msg::Passivate, _) => {}
            }
        }
        if let Some(registry) = self.registry() {
            registry.remove(&self.stream.aggregate_id, self.generation);
        }
        self.kernel.live.fetch_sub(1, Ordering::SeqCst);
        slot.mailbox.mark_stopped(&signals);
        drop(token);
    }

    fn registry(&self) -> Option<&Registry<A>> {
        self.kernel.registry::<A>()
    }

    /// Handles one mailbox drain: commands are committed in groups, a state request sees only
    /// committed state.
    async fn handle_batch(&mut self, batch: Vec<Msg<A>>) -> Flow {
        let mut jobs = Vec::with_capacity(batch.len());
        let alone = batch.len() == 1;
        let mut batch = batch.into_iter();
        while let Some(msg) = batch.next() {
            match msg {
                Msg::Command {
                    command,
                    options,
                    reply,
                } => jobs.push(Job {
                    command,
                    options,
                    reply,
                }),
                Msg::State { reply } => {
                    if let Flow::Stop = self.commit_jobs(std::mem::take(&mut jobs)).await {
                        let _ = reply.send(None);
                        retry_rest(batch);
                        return Flow::Stop;
                    }
                    let answer = match self.loaded().await {
                        Ok((state, _)) => copy_state(state),
                        Err(LoadError::Store(e)) => Err(DispatchError::Store(e)),
                        Err(LoadError::Panicked(m)) => {
                            let _ = reply.send(Some(Err(DispatchError::Panicked(m))));
                            retry_rest(batch);
                            return Flow::Stop;
                        }
                    };
                    let _ = reply.send(Some(answer));
                }
                Msg::Passivate => {
                    // Honoured only when it is all the actor got: anything else means work
                    // arrived after the sweeper looked.
                    if alone {
                        return Flow::Stop;
                    }
                }
                Msg::Stop => {
                    if let Flow::Stop = self.commit_jobs(std::mem::take(&mut jobs)).await {
                        retry_rest(batch);
                        return Flow::Stop;
                    }
                    // Whatever was queued behind the stop request is answered `Shutdown`.
                    for msg in batch {
                        match msg {
                            Msg::Command { reply, .. } => {
                                let _ = reply.send(Reply::Done(Err(DispatchError::Shutdown)));
                            }
                            Msg::State { reply } => {
                                let _ = reply.send(Some(Err(DispatchError::Shutdown)));
                            }
                            Msg::Stop | Msg::Passivate => {}
                        }
                    }
                    return Flow::Shutdown;
                }
            }
        }
        self.commit_jobs(jobs).await
    }

    /// The loaded state, rehydrating it first if needed.
    async fn loaded(&mut self) -> Result<(&mut A, &mut u64), LoadError> {
        if self.state.is_none() {
            self.state = Some(self.rehydrate().await?);
        }
        match &mut self.state {
            Some((state, version)) => Ok((state, version)),
            None => Err(LoadError::Store(StoreError::Closed)),
        }
    }

    /// Loads the latest snapshot (if any, and if it still decodes) and replays later events.
    async fn rehydrate(&self) -> Result<(A, u64), LoadError> {
        let mut state = A::default();
        let mut version = 0;
        if let Some(snapshots) = &self.kernel.snapshot_store {
            match snapshots.load_latest(&self.stream).await {
                Ok(Some(snapshot)) => match serde_json::from_slice::<A>(&snapshot.state) {
                    Ok(restored) => {
                        state = restored;
                        version = snapshot.version;
                    }
                    Err(e) => tracing::warn!(
                        stream = %self.stream,
                        version = snapshot.version,
                        error = %e,
                        "ignoring a snapshot that no longer decodes; replaying the stream"
                    ),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    stream = %self.stream,
                    error = %e,
                    "cannot load the latest snapshot; replaying the stream"
                ),
            }
        }
        let page = self.kernel.config.replay_page;
        loop {
            let events = self
                .kernel
                .event_store
                .read_stream(&self.stream, version + 1, page)
                .await
                .map_err(LoadError::Store)?;
            let full = events.len() == page;
            for recorded in &events {
                let event = A::Event::from_recorded(recorded).map_err(|e| {
                    LoadError::Store(StoreError::Corrupt(format!(
                        "event {} of stream {} cannot be decoded: {e}",
                        recorded.sequence, self.stream
                    )))
                })?;
                catch_unwind(AssertUnwindSafe(|| state.apply(&event)))
                    .map_err(|p| LoadError::Panicked(panic_message(p)))?;
                version = recorded.sequence;
            }
            if !full {
                break;
            }
        }
        Ok((state, version))
    }

    /// Decides, commits and answers a group of commands (see the module docs).
    async fn commit_jobs(&mut self, jobs: Vec<Job<A>>) -> Flow {
        if jobs.is_empty() {
            return Flow::Continue;
        }
        let retries = self.kernel.config.conflict_retries;
        let mut attempt = 0;
        let mut transient = 0;
        loop {
            let (state, version) = match self.loaded().await {
                Ok(loaded) => loaded,
                Err(LoadError::Store(e)) => {
                    answer_all(jobs, |_| DispatchError::Store(e.clone()));
                    return Flow::Continue;
                }
                Err(LoadError::Panicked(m)) => {
                    answer_all(jobs, |_| DispatchError::Panicked(m.clone()));
                    return Flow::Stop;
                }
            };
            let base = *version;
            let decided = decide(state, base, &jobs);
            let (events, outcomes) = match decided {
                Decided::Panicked { index, message } => {
                    self.state = None;
                    for (i, job) in jobs.into_iter().enumerate() {
                        let reply = if i == index {
                            Reply::Done(Err(DispatchError::Panicked(message.clone())))
                        } else {
                            Reply::Retry(job.command, job.options)
                        };
                        let _ = job.reply.send(reply);
                    }
                    return Flow::Stop;
                }
                Decided::Ok { events, outcomes } => (events, outcomes),
            };
            let answers_need_check = outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Rejected(_) | Outcome::Conflict { .. }));
            let result = if !events.is_empty() {
                self.kernel
                    .event_store
                    .append(&self.stream, ExpectedVersion::Exact(base), events)
                    .await
                    .map(Some)
            } else if answers_need_check {
                // Rejections are only as good as the state they were decided on: make sure no
                // other writer moved the stream.
                match self.kernel.event_store.stream_version(&self.stream).await {
                    Ok(actual) if actual == base => Ok(None),
                    Ok(actual) => Err(StoreError::Conflict {
                        expected: ExpectedVersion::Exact(base),
                        actual,
                    }),
                    Err(e) => Err(e),
                }
            } else {
                Ok(None)
            };
            match result {
                Ok(appended) => {
                    let new_version = appended.as_ref().map_or(base, |a| a.version);
                    if let Some((_, version)) = &mut self.state {
                        *version = new_version;
                    }
                    let recorded = appended.map(|a| a.events).unwrap_or_default();
                    self.maybe_snapshot(base, new_version);
                    answer(jobs, outcomes, recorded);
                    return Flow::Continue;
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    self.state = None;
                    attempt += 1;
                    if attempt > retries {
                        tracing::warn!(stream = %self.stream, attempt, "giving up after repeated version conflicts");
                        answer_all(jobs, |_| DispatchError::Conflict {
                            expected: base,
                            actual,
                        });
                        return Flow::Continue;
                    }
                    tracing::debug!(stream = %self.stream, base, actual, "version conflict; catching up and re-running");
                }
                Err(e) if e.is_transient() && transient < self.kernel.config.store_retries => {
                    // The store says the write did not happen: reload and try again.
                    transient += 1;
                    self.state = None;
                    let wait = Duration::from_millis(10u64 << transient.min(8));
                    tracing::warn!(stream = %self.stream, error = %e, attempt = transient, ?wait, "store unavailable; retrying the batch");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    // Nothing is acknowledged: the caller learns the write failed (or, for
                    // `Indeterminate`, may not have happened), and the state is reloaded.
                    tracing::warn!(stream = %self.stream, error = %e, "append failed; nothing of the batch was applied");
                    self.state = None;
                    answer_all(jobs, |_| DispatchError::Store(e.clone()));
                    return Flow::Continue;
                }
            }
        }
    }

    /// Writes a snapshot, off the reply path, when a commit crossed a multiple of
    /// `snapshot_every`.
    fn maybe_snapshot(&self, before: u64, after: u64) {
        let every = self.kernel.config.snapshot_every;
        if every == 0 || before / every == after / every {
            return;
        }
        let (Some(store), Some((state, version))) = (&self.kernel.snapshot_store, &self.state)
        else {
            return;
        };
        let bytes = match serde_json::to_vec(state) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(stream = %self.stream, error = %e, "cannot serialize the state for a snapshot");
                return;
            }
        };
        let snapshot = Snapshot::new(self.stream.clone(), *version, bytes);
        let store = store.clone();
        let keep = self.kernel.config.snapshots_kept.max(1);
        let token = self.kernel.tasks.token();
        self.kernel.runtime.spawn(async move {
            let stream = snapshot.stream.clone();
            let version = snapshot.version;
            match store.save(snapshot).await {
                Ok(()) => {
                    tracing::debug!(%stream, version, "snapshot written");
                    if let Err(e) = store.prune(&stream, keep).await {
                        tracing::warn!(%stream, error = %e, "cannot prune old snapshots");
                    }
                }
                Err(e) => tracing::warn!(%stream, version, error = %e, "snapshot write failed"),
            }
            drop(token);
        });
    }
}

enum Decided<E> {
    Ok {
        events: Vec<NewEvent>,
        outcomes: Vec<Outcome<E>>,
    },
    Panicked {
        index: usize,
        message: String,
    },
}

/// Handles each job in order against the evolving state (applying accepted events as it goes).
fn decide<A: Aggregate>(state: &mut A, base: u64, jobs: &[Job<A>]) -> Decided<A::Error>
where
    A::Command: Clone,
{
    let mut version = base;
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        if let Some(expected) = job.options.as_ref().and_then(|o| o.expected_version)
            && expected != version
        {
            outcomes.push(Outcome::Conflict {
                expected,
                actual: version,
            });
            continue;
        }
        let command = job.command.clone();
        let decided = match catch_unwind(AssertUnwindSafe(|| state.handle(command))) {
            Ok(decided) => decided,
            Err(p) => {
                return Decided::Panicked {
                    index,
                    message: panic_message(p),
                };
            }
        };
        let produced = match decided {
            Ok(produced) => produced,
            Err(e) => {
                outcomes.push(Outcome::Rejected(e));
                continue;
            }
        };
        let mut encoded = Vec::with_capacity(produced.len());
        let mut failure = None;
        for event in &produced {
            match event.to_new_event() {
                Ok(mut new) => {
                    if let Some(options) = &job.options {
                        new.metadata = options.event_metadata();
                    }
                    encoded.push(new);
                }
                Err(e) => {
                    failure = Some(StoreError::InvalidInput(format!(
                        "cannot encode an event of {}: {e}",
                        A::TYPE
                    )));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            outcomes.push(Outcome::Failed(e));
            continue;
        }
        for event in &produced {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| state.apply(event))) {
                return Decided::Panicked {
                    index,
                    message: panic_message(p),
                };
            }
        }
        version += encoded.len() as u64;
        outcomes.push(Outcome::Events {
            count: encoded.len(),
            version,
        });
        events.extend(encoded);
    }
    Decided::Ok { events, outcomes }
}

/// Answers each job with its outcome, handing out the recorded events in order.
fn answer<A: Aggregate>(
    jobs: Vec<Job<A>>,
    outcomes: Vec<Outcome<A::Error>>,
    recorded: Vec<crate::store::RecordedEvent>,
) {
    let mut recorded = recorded.into_iter();
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let result = match outcome {
            Outcome::Events { count, version } => Ok(Committed {
                version,
                events: recorded.by_ref().take(count).collect(),
            }),
            Outcome::Rejected(e) => Err(DispatchError::Rejected(e)),
            Outcome::Conflict { expected, actual } => {
                Err(DispatchError::Conflict { expected, actual })
            }
            Outcome::Failed(e) => Err(DispatchError::Store(e)),
        };
        let _ = job.reply.send(Reply::Done(result));
    }
}

fn answer_all<A: Aggregate>(jobs: Vec<Job<A>>, error: impl Fn(usize) -> DispatchError<A::Error>) {
    for (i, job) in jobs.into_iter().enumerate() {
        let _ = job.reply.send(Reply::Done(Err(error(i))));
    }
}

/// Hands the rest of a drained batch back to the dispatchers.
fn retry_rest<A: Aggregate>(rest: impl Iterator<Item = Msg<A>>) {
    for msg in rest {
        match msg {
            Msg::Command {
                command,
                options,
                reply,
            } => {
                let _ = reply.send(Reply::Retry(command, options));
            }
            Msg::State { reply } => {
                let _ = reply.send(None);
            }
            Msg::Stop | Msg::Passivate => {}
        }
    }
}

/// A copy of the state for `Kernel::state` (through serde: `Aggregate` does not require
/// `Clone`).
fn copy_state<A: Aggregate>(state: &A) -> Result<A, DispatchError<A::Error>> {
    serde_json::to_vec(state)
        .and_then(|bytes| serde_json::from_slice(&bytes))
        .map_err(|e| {
            DispatchError::Store(StoreError::InvalidInput(format!(
                "cannot copy the state of {}: {e}",
                A::TYPE
            )))
        })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
