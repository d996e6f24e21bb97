//! Process managers: workflows across aggregates that take effect exactly once.
//!
//! A process manager turns events into commands. Like a projection it reads the global log in
//! position order and checkpoints its progress, but its state is per *instance* (one running
//! workflow, keyed by the events' correlation id) and its handlers send commands through
//! [`Commands`], which the runner dispatches on the kernel.
//!
//! The `#[process_manager]` macro writes the [`ProcessManager`] impl from `#[on(start)]`,
//! `#[on]` and `#[rejected]` methods; `kernel.process_managers().start::<P>(options)` runs
//! one (see [`ProcessManagers`]).
//!
//! # Exactly-once effects
//!
//! - Every command gets a deterministic id, derived from the manager's name, the instance key,
//!   the position of the event that triggered it and its index among that event's commands
//!   ([`command_id`]); its causation id names the triggering event ([`causation_id`]). A command
//!   sent again after an interruption is answered from the aggregate's idempotency window
//!   (`KernelBuilder::dedup_window`) instead of running twice.
//! - Instance states are saved together with the position, in one checkpoint write, after the
//!   commands of every handled event were answered: at most every 100 ms while busy, and
//!   whenever the runner reaches the head of the log or stops. After a crash the runner resumes
//!   from the last checkpoint: it handles the later events again from the saved states, sends
//!   the same commands with the same ids (answered from the idempotency windows, as long as an
//!   aggregate received fewer than `dedup_window` commands meanwhile), and so every instance
//!   applies each event once.
//! - A rejected command records nothing, so on a re-run it is decided again against the
//!   aggregate's current state; `#[rejected]` runs for the answer the re-run gets.
//!
//! # Deadlines
//!
//! A handler sets a timer with [`Commands::schedule`] (a delay from the triggering event's
//! timestamp) or [`Commands::schedule_at`]; its payload is a user type with `#[derive(Event)]`,
//! and the instance's `#[on(deadline)]` handler for that type runs when it falls due by the
//! kernel's clock, sending commands as any handler does. [`Commands::cancel`] drops the
//! instance's pending ones of a type, and an instance that finishes drops all of its own.
//! Pending deadlines are saved with the instances in the checkpoint, so a restart, or another
//! node taking the lease over (PostgreSQL), fires those whose time passed while nobody ran.
//! A deadline fires once in effect: its removal is saved like an event's handling, and its
//! handler's commands get ids derived from the deadline's id (`{manager}/{key}/{id}/{index}`,
//! the id being derived from what scheduled it, as `7:0`), so firing it again after a crash is
//! answered from the idempotency windows. It fires at the same point among its instance's
//! events when the log is handled again: before the first event of its instance stamped at or
//! after its due time (see `runner` for the rule).
//!
//! # Metrics
//!
//! Labelled `process_manager`: [`EVENTS_HANDLED`], [`COMMANDS_SENT`], [`REJECTIONS`],
//! [`DEADLINES_FIRED`] (counters), [`INSTANCES`], [`DEADLINES_PENDING`] and [`LAG_EVENTS`]
//! (gauges); [`ProcessHandle::status`] reports the
//! same counts without a recorder.
//!
//! Events of one instance are handled one at a time, each after the commands of the previous one
//! were answered (and their rejections handled); different instances proceed concurrently.
//!
//! # Layout
//!
//! This file holds what a process manager is ([`ProcessManager`]); below it, each file depends
//! on the ones before it only: `ids` (command and deadline ids), `deadline` (a deadline, and
//! the set of pending ones), `commands` ([`Commands`]), `metrics` (the handles),
//! `instances` (what the checkpoint holds), `requests` (what handles ask of a runner about its
//! dead letters, and the dead letters around the instances in the checkpoint), `status` (what a
//! runner shares with its handles), `group` and `handle` ([`ProcessHandle`]), `runner` (its
//! part of following the log; the follower in `crate::follow` does the rest), `parking` (the
//! runner's dead-letter queue under `ErrorPolicy::Park`), and `managers` (`kernel.process_managers()`, kept as an
//! extension of the kernel: the kernel does not know process managers).

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::panic::panic_message;
use crate::projection::ProjectionError;
use crate::store::RecordedEvent;

mod commands;
mod deadline;
mod group;
mod handle;
mod ids;
mod instances;
mod managers;
mod metrics;
mod parking;
mod requests;
mod runner;
mod status;

pub(crate) use commands::Outcome;
pub use commands::{Commands, SentCommand};
pub use deadline::ScheduledDeadline;
#[cfg(feature = "testkit")]
pub(crate) use deadline::Timers;
pub use handle::ProcessHandle;
pub use ids::{causation_id, command_id};
pub use managers::{CHECKPOINT_PREFIX, ProcessManagers};
pub use metrics::{
    COMMANDS_SENT, DEADLINES_FIRED, DEADLINES_PENDING, EVENTS_HANDLED, INSTANCES, LAG_EVENTS,
    REJECTIONS,
};
pub use status::ProcessStatus;

/// A workflow across aggregates. Written by `#[process_manager]`, or by hand.
///
/// The state (`Self`) is one instance's: it starts from `Default` when an event that
/// [`starts`](ProcessManager::starts) an instance arrives for a key that has none, and is
/// dropped when a handler calls [`Commands::finish`].
pub trait ProcessManager: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The manager's unique name (its checkpoint key and part of every command id).
    const NAME: &'static str;

    /// Whether any handler takes events of this type. Events it does not accept are skipped
    /// without decoding their payload.
    fn accepts(event_type: &str) -> bool;

    /// Whether this event creates an instance when its key has none (`#[on(start)]`).
    fn starts(event: &RecordedEvent) -> bool;

    /// The instance an event belongs to: its correlation id unless overridden
    /// (`#[process_manager(key = f)]`). `None`: the event belongs to no instance.
    fn key(event: &RecordedEvent) -> Option<String> {
        event.correlation_id().map(str::to_owned)
    }

    /// Handles one accepted event of this instance.
    fn handle(&mut self, event: &RecordedEvent, out: &mut Commands) -> Result<(), ProjectionError>;

    /// Handles the rejection of a command this instance sent (`#[rejected]`). The default does
    /// nothing.
    fn rejected(
        &mut self,
        rejection: &Rejection,
        out: &mut Commands,
    ) -> Result<(), ProjectionError> {
        let _ = (rejection, out);
        Ok(())
    }

    /// Handles a deadline of this instance that fell due (`#[on(deadline)]`). The default has
    /// no handler for any deadline: it fails, naming the deadline.
    fn deadline(
        &mut self,
        deadline: &ScheduledDeadline,
        out: &mut Commands,
    ) -> Result<(), ProjectionError> {
        let _ = out;
        Err(no_deadline_handler(Self::NAME, deadline))
    }
}

/// The error of a deadline that no `#[on(deadline)]` handler takes (what the default
/// [`ProcessManager::deadline`] and the generated one return).
pub fn no_deadline_handler(manager: &str, deadline: &ScheduledDeadline) -> ProjectionError {
    ProjectionError::State(format!(
        "process manager `{manager}` has no `#[on(deadline)]` handler for the deadline `{}` \
         (id {}) that fell due",
        deadline.name(),
        deadline.id()
    ))
}

/// A command an instance sent that the kernel did not commit.
///
/// An aggregate's rejection, a version conflict under an expected version given with
/// [`Commands::dispatch_with`], an aggregate type the kernel does not have, and a panicking
/// aggregate all reach `#[rejected]` as a `Rejection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The aggregate type the command was sent to.
    pub aggregate_type: String,
    /// The aggregate id the command was sent to.
    pub aggregate_id: String,
    /// The command's (deterministic) id.
    pub command_id: String,
    /// Why: the error's `Display`.
    pub message: String,
}

/// Runs an event handler, turning a panic into an error.
pub(crate) fn handle_event<P: ProcessManager>(
    state: &mut P,
    event: &RecordedEvent,
    out: &mut Commands,
) -> Result<(), ProjectionError> {
    caught(|| state.handle(event, out)).map_err(|e| ProjectionError::At {
        name: P::NAME.to_owned(),
        position: event.position,
        source: Box::new(e),
    })
}

/// Runs a deadline's handler, turning a panic into an error.
pub(crate) fn handle_deadline<P: ProcessManager>(
    state: &mut P,
    deadline: &ScheduledDeadline,
    out: &mut Commands,
) -> Result<(), ProjectionError> {
    caught(|| state.deadline(deadline, out)).map_err(|e| {
        ProjectionError::State(format!(
            "process manager `{}`: the deadline {} (`{}`) of instance `{}`: {e}",
            P::NAME,
            deadline.id(),
            deadline.name(),
            out.key()
        ))
    })
}

/// Runs the rejection handler, turning a panic into an error.
pub(crate) fn handle_rejection<P: ProcessManager>(
    state: &mut P,
    rejection: &Rejection,
    out: &mut Commands,
) -> Result<(), ProjectionError> {
    caught(|| state.rejected(rejection, out))
}

/// Runs a handler, turning a panic into [`ProjectionError::Panicked`].
fn caught(handler: impl FnOnce() -> Result<(), ProjectionError>) -> Result<(), ProjectionError> {
    catch_unwind(AssertUnwindSafe(handler))
        .unwrap_or_else(|p| Err(ProjectionError::Panicked(panic_message(p))))
}

/// Feeds one event to the instances in `instances` as the runner does, without dispatching:
/// the instance state after the event and the commands it sent, or `None` when the event
/// belongs to no instance (no key, not accepted, or no instance and not a start event).
pub(crate) fn route<P: ProcessManager>(
    instances: &mut std::collections::HashMap<String, P>,
    event: &RecordedEvent,
) -> Option<(String, P)> {
    if !P::accepts(&event.event_type) {
        return None;
    }
    let key = P::key(event)?;
    match instances.remove(&key) {
        Some(state) => Some((key, state)),
        None if P::starts(event) => Some((key, P::default())),
        None => None,
    }
}
