//! One actor per live aggregate: a task that owns the state and drains a mailbox.
//!
//! An actor takes every message waiting in its mailbox, handles the commands in order against
//! the evolving state, appends all their events in one `append` with the version it started
//! from, and only then answers each (see [`commit`](super::commit)). When it stops
//! (passivation, a panic, shutdown) it closes its mailbox and hands the commands still queued
//! back to their dispatchers, which wait for it to be gone before starting a fresh actor: a
//! command is never lost and never runs on stale state.

use std::sync::Arc;

use dashmap::DashMap;

use super::metrics::AggregateMetrics;
use crate::aggregate::Aggregate;
use crate::store::StreamId;

use super::DispatchError;
use super::commit::{AfterCommit, commit};
use super::context::Context;
use super::load::{LoadError, loaded};
use super::mailbox::{Mailbox, Signals};
use super::message::{Exit, Job, Msg};
use crate::tracker::TaskToken;

/// The live actors of one aggregate type, by aggregate id.
pub(crate) struct Slots<A: Aggregate> {
    pub(crate) map: DashMap<String, Arc<Slot<A>>, foldhash::fast::RandomState>,
    pub(crate) signals: Signals,
    /// The type's metrics, registered with the type.
    pub(crate) metrics: AggregateMetrics,
}

impl<A: Aggregate> Default for Slots<A> {
    fn default() -> Self {
        Self {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            signals: Signals::default(),
            metrics: AggregateMetrics::new(A::TYPE),
        }
    }
}

impl<A: Aggregate> Slots<A> {
    /// Removes the slot of `id` if it still belongs to actor `generation`.
    pub(crate) fn remove(&self, id: &str, generation: u64) {
        self.map
            .remove_if(id, |_, slot| slot.generation == generation);
    }
}

/// One live actor: its generation (to tell it from a successor) and its mailbox.
pub(crate) struct Slot<A: Aggregate> {
    pub(crate) generation: u64,
    pub(crate) mailbox: Mailbox<Msg<A>>,
}

/// An actor: what it owns, and what it was given.
pub(crate) struct Actor<A: Aggregate> {
    ctx: Arc<Context>,
    slots: Arc<Slots<A>>,
    slot: Arc<Slot<A>>,
    stream: StreamId,
    /// The state and its version; `None` until loaded, and after anything that may have left
    /// it out of step with the store.
    state: Option<(A, u64)>,
    /// The ids of the latest commands, once a command came with an explicit id (`dedup`).
    window: Option<Box<super::dedup::Window>>,
    /// How the messages still queued are answered when the actor stops.
    exit: Exit,
    /// Declared last: fields drop in order, so shutdown (which waits for the token) returns
    /// only after this actor's `Arc<Context>`, and with it its store handles, is gone.
    _token: TaskToken,
}

/// What the actor does after a batch.
enum Flow {
    Continue,
    /// The actor must stop (a panic left its state unknown, or it was idle).
    Stop,
    /// The kernel asked the actor to stop.
    Shutdown,
}

impl<A: Aggregate> Actor<A> {
    pub(crate) fn new(
        ctx: Arc<Context>,
        slots: Arc<Slots<A>>,
        slot: Arc<Slot<A>>,
        id: &str,
        token: TaskToken,
    ) -> Self {
        slots.metrics.actor_started();
        Self {
            ctx,
            slots,
            slot,
            stream: StreamId::new(A::TYPE, id),
            state: None,
            window: None,
            exit: Exit::Retry,
            _token: token,
        }
    }

    /// The actor's task. It ends by dropping `self`, which stops the actor (see `Drop`).
    pub(crate) async fn run(mut self) {
        let max_batch = self.ctx.config.max_batch;
        let mut batch = Vec::new();
        loop {
            self.slot
                .mailbox
                .recv_batch(&self.slots.signals, max_batch, &mut batch)
                .await;
            // Boxed so that an idle actor's task does not carry the batch's state machine.
            let flow = Box::pin(self.handle_batch(std::mem::take(&mut batch))).await;
            self.slot.mailbox.touch(self.ctx.idle.now_micros());
            match flow {
                Flow::Continue => {}
                Flow::Stop => return,
                Flow::Shutdown => {
                    self.exit = Exit::Shutdown;
                    return;
                }
            }
        }
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
                    if let AfterCommit::Stop = self.commit(std::mem::take(&mut jobs)).await {
                        let _ = reply.send(None);
                        batch.for_each(|msg| msg.refuse(Exit::Retry));
                        return Flow::Stop;
                    }
                    let answer = match self.load().await {
                        Ok((state, _)) => copy_state(state),
                        Err(LoadError::Store(e)) => Err(DispatchError::Store(e)),
                        Err(LoadError::Deleted) => Err(DispatchError::StreamDeleted {
                            stream: self.stream.clone(),
                        }),
                        Err(LoadError::Panicked(m)) => {
                            let _ = reply.send(Some(Err(DispatchError::Panicked(m))));
                            batch.for_each(|msg| msg.refuse(Exit::Retry));
                            return Flow::Stop;
                        }
                    };
                    let _ = reply.send(Some(answer));
                }
                Msg::Passivate => {
                    // Honoured only when it is all the actor got: anything else means work
                    // arrived after the sweeper looked.
                    if alone {
                        self.slots.metrics.passivations.add(1);
                        return Flow::Stop;
                    }
                }
                Msg::Reload => {
                    if let AfterCommit::Stop = self.commit(std::mem::take(&mut jobs)).await {
                        batch.for_each(|msg| msg.refuse(Exit::Retry));
                        return Flow::Stop;
                    }
                    self.state = None;
                }
                Msg::Stop => {
                    if let AfterCommit::Stop = self.commit(std::mem::take(&mut jobs)).await {
                        batch.for_each(|msg| msg.refuse(Exit::Retry));
                        return Flow::Stop;
                    }
                    // Whatever was queued behind the stop request is answered `Shutdown`.
                    batch.for_each(|msg| msg.refuse(Exit::Shutdown));
                    return Flow::Shutdown;
                }
            }
        }
        match self.commit(jobs).await {
            AfterCommit::Continue => Flow::Continue,
            AfterCommit::Stop => Flow::Stop,
        }
    }

    /// The loaded state, rehydrated first when there is none.
    async fn load(&mut self) -> Result<(&mut A, &mut u64), LoadError> {
        loaded(
            &self.ctx,
            &self.stream,
            &mut self.state,
            &self.slots.metrics,
        )
        .await
    }

    async fn commit(&mut self, jobs: Vec<Job<A>>) -> AfterCommit {
        commit(
            &self.ctx,
            &self.stream,
            &mut self.state,
            &mut self.window,
            jobs,
            &self.slots.metrics,
        )
        .await
    }
}

/// Stops the actor however its task ends: when `run` returns, and also when a panic escaped
/// it (from `Default`, serde, an event codec or the store: `handle` and `apply` are caught
/// earlier) and the runtime drops the task. The mailbox is closed and what it still held is
/// answered, the slot is freed for a fresh actor, and waiting dispatchers are woken. Then the
/// fields drop, the task token last.
impl<A: Aggregate> Drop for Actor<A> {
    fn drop(&mut self) {
        if matches!(self.exit, Exit::Retry) {
            tracing::debug!(stream = %self.stream, "actor stopping");
        }
        for msg in self.slot.mailbox.close(&self.slots.signals) {
            msg.refuse(self.exit);
        }
        self.slots
            .remove(&self.stream.aggregate_id, self.slot.generation);
        self.slots.metrics.actor_stopped();
        self.ctx.actor_stopped();
        self.slot.mailbox.mark_stopped(&self.slots.signals);
    }
}

/// A copy of the state for `Kernel::state` (through serde: `Aggregate` does not require
/// `Clone`).
fn copy_state<A: Aggregate>(state: &A) -> Result<A, DispatchError<A::Error>> {
    serde_json::to_vec(state)
        .and_then(|bytes| serde_json::from_slice(&bytes))
        .map_err(|e| {
            DispatchError::Store(crate::store::StoreError::InvalidInput(format!(
                "cannot copy the state of {}: {e}",
                A::TYPE
            )))
        })
}
