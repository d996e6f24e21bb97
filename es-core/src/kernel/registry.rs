//! The registry of one aggregate type: finds an aggregate's actor (starting it on demand) and
//! routes commands and state requests to it.
//!
//! The actors are found in a concurrent map, so no single task sits on every command's path: a
//! dispatch is one map lookup and one push into the actor's mailbox.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::mapref::entry::Entry;
use tokio::sync::oneshot;

use super::metrics::{AggregateMetrics, AggregateStats};
use crate::aggregate::Aggregate;

use super::actor::{Actor, Slot, Slots};
use super::context::Context;
use super::mailbox::Mailbox;
use super::message::{Msg, Options, Reply};
use super::{Committed, DispatchError};

/// The live actors of one aggregate type.
pub(crate) struct Registry<A: Aggregate> {
    slots: Arc<Slots<A>>,
}

/// A registry seen without its aggregate type, for what the kernel does to all actors.
pub(crate) trait AnyRegistry: Send + Sync + 'static {
    /// The registry itself, to downcast to `Registry<A>`.
    fn as_any(&self) -> &(dyn Any + Send + Sync);
    /// Asks every live actor to stop once it has handled what is already in its mailbox.
    fn stop_all(&self);
    /// Asks every live actor to drop its in-memory state (rehydrated on next use).
    fn reload_all(&self);
    /// Offers passivation to every actor idle since before `idle_since` (kernel time, µs).
    fn sweep(&self, idle_since: u64);
    /// The type's figures so far.
    fn stats(&self) -> AggregateStats;
}

impl<A: Aggregate> AnyRegistry for Registry<A> {
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn stop_all(&self) {
        for slot in self.slots.map.iter() {
            // An actor that already stopped has closed its mailbox: nothing to do.
            slot.mailbox.push_control(Msg::Stop);
        }
    }

    fn reload_all(&self) {
        for slot in self.slots.map.iter() {
            slot.mailbox.push_control(Msg::Reload);
        }
    }

    fn sweep(&self, idle_since: u64) {
        for slot in self.slots.map.iter() {
            if slot.mailbox.last_active() <= idle_since {
                slot.mailbox.offer_if_idle(Msg::Passivate);
            }
        }
    }

    fn stats(&self) -> AggregateStats {
        self.slots.metrics.stats()
    }
}

/// Numbers actors, to tell an actor from its successor under the same id.
static GENERATION: AtomicU64 = AtomicU64::new(0);

impl<A: Aggregate> Registry<A> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Arc::default(),
        }
    }

    /// The type's metrics.
    pub(crate) fn metrics(&self) -> &AggregateMetrics {
        &self.slots.metrics
    }

    /// The slot of `id`'s actor, starting one if none runs; `None` once shutdown has begun.
    fn slot(&self, ctx: &Arc<Context>, id: &str) -> Option<Arc<Slot<A>>> {
        if let Some(slot) = self.slots.map.get(id) {
            return Some(slot.clone());
        }
        let (slot, actor) = match self.slots.map.entry(id.to_owned()) {
            Entry::Occupied(slot) => return Some(slot.get().clone()),
            Entry::Vacant(vacant) => {
                let token = ctx.start_actor()?;
                let slot = Arc::new(Slot {
                    generation: GENERATION.fetch_add(1, Ordering::Relaxed),
                    mailbox: Mailbox::new(ctx.config.mailbox, ctx.idle.now_micros()),
                });
                vacant.insert(slot.clone());
                let actor = Actor::new(ctx.clone(), self.slots.clone(), slot.clone(), id, token);
                (slot, actor)
            }
        };
        // Spawned once the map's lock is released: a runtime that is shutting down drops the
        // actor at once, and its `Drop` frees the slot in the map.
        // The task's future is the actor's own (no wrapping block), so an idle actor's task
        // holds one copy of its fields.
        ctx.runtime.spawn(actor.run());
        if ctx.is_shut_down() {
            // Shutdown began after the token was taken: it waits for this actor, but may have
            // looked for actors to stop before this one was in the map.
            slot.mailbox.push_control(Msg::Stop);
        }
        Some(slot)
    }

    /// Sends a command to `id`'s actor and waits for its answer, handing it to a fresh actor
    /// whenever the one it reached stopped first.
    pub(crate) async fn dispatch(
        &self,
        ctx: &Arc<Context>,
        id: &str,
        mut command: A::Command,
        mut options: Options,
    ) -> Result<Committed, DispatchError<A::Error>> {
        loop {
            if ctx.is_shut_down() {
                return Err(DispatchError::Shutdown);
            }
            let Some(slot) = self.slot(ctx, id) else {
                return Err(DispatchError::Shutdown);
            };
            let (reply, answer) = oneshot::channel();
            let msg = Msg::Command {
                command,
                options,
                reply,
            };
            match slot.mailbox.send(&self.slots.signals, msg).await {
                Ok(()) => match answer.await {
                    Ok(Reply::Done(result)) => return result,
                    Ok(Reply::Retry(c, o)) => (command, options) = (c, o),
                    Err(_) => return Err(unanswered(ctx)),
                },
                Err(Msg::Command {
                    command: c,
                    options: o,
                    ..
                }) => (command, options) = (c, o),
                Err(_) => unreachable!("`send` gives back the message it was given"),
            }
            slot.mailbox.wait_stopped(&self.slots.signals).await;
            self.slots.remove(id, slot.generation);
        }
    }

    /// A copy of `id`'s committed state, from its actor.
    pub(crate) async fn state(
        &self,
        ctx: &Arc<Context>,
        id: &str,
    ) -> Result<A, DispatchError<A::Error>> {
        loop {
            if ctx.is_shut_down() {
                return Err(DispatchError::Shutdown);
            }
            let Some(slot) = self.slot(ctx, id) else {
                return Err(DispatchError::Shutdown);
            };
            let (reply, answer) = oneshot::channel();
            if slot
                .mailbox
                .send(&self.slots.signals, Msg::State { reply })
                .await
                .is_ok()
            {
                match answer.await {
                    Ok(Some(result)) => return result,
                    Ok(None) => {}
                    Err(_) => return Err(unanswered(ctx)),
                }
            }
            slot.mailbox.wait_stopped(&self.slots.signals).await;
            self.slots.remove(id, slot.generation);
        }
    }
}

/// The error for a request whose actor ended without answering it: its task was dropped, after
/// a panic outside `handle` and `apply`, or because its runtime shut down.
fn unanswered<E>(ctx: &Context) -> DispatchError<E> {
    if ctx.is_shut_down() {
        DispatchError::Shutdown
    } else {
        DispatchError::Panicked(
            "the aggregate's actor ended without answering (a panic outside `handle` and \
             `apply`, or its runtime shut down)"
                .to_owned(),
        )
    }
}
