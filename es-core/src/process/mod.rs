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
//! # Metrics
//!
//! Labelled `process_manager`: [`EVENTS_HANDLED`], [`COMMANDS_SENT`], [`REJECTIONS`]
//! (counters), [`INSTANCES`] and [`LAG_EVENTS`] (gauges); [`ProcessHandle::status`] reports the
//! same counts without a recorder.
//!
//! Events of one instance are handled one at a time, each after the commands of the previous one
//! were answered (and their rejections handled); different instances proceed concurrently.
//!
//! # Layout
//!
//! This file holds what a process manager is ([`ProcessManager`], [`Commands`], the command
//! ids); below it, each file depends on the ones before it only: `metrics` (the handles),
//! `status` (what a runner shares with its handles), `handle` ([`ProcessHandle`]), `instances`
//! (what the checkpoint holds), `runner` (its part of following the log; the follower in
//! `crate::follow` does the rest), and `managers` (`kernel.process_managers()`, kept as an
//! extension of the kernel: the kernel does not know process managers).

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::Aggregate;
use crate::kernel::{DispatchError, DispatchOptions, Kernel};
use crate::panic::panic_message;
use crate::projection::ProjectionError;
use crate::store::RecordedEvent;

mod handle;
mod instances;
mod managers;
mod metrics;
mod runner;
mod status;

pub use handle::ProcessHandle;
pub use managers::{CHECKPOINT_PREFIX, ProcessManagers};
pub use metrics::{COMMANDS_SENT, EVENTS_HANDLED, INSTANCES, LAG_EVENTS, REJECTIONS};
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

/// The answer to one dispatched command.
pub(crate) enum Outcome {
    /// It committed (or had committed before: the idempotency window answered).
    Done,
    /// It was refused; the message is the error's.
    Rejected(String),
    /// The store failed or the kernel is shutting down: send it again later (same id).
    Retry(String),
    /// The kernel is gone or shutting down.
    Shutdown,
}

type SendFn = fn(Kernel, &str, &(dyn Any + Send + Sync), DispatchOptions) -> SendFuture;
type SendFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A command a handler sent, not yet dispatched.
pub struct SentCommand {
    /// The aggregate type (`Aggregate::TYPE`).
    pub aggregate_type: &'static str,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The command's `Debug` text, written only when asked for (what the testkit compares).
    describe: fn(&(dyn Any + Send + Sync)) -> String,
    /// The envelope: the runner fills in the command, correlation and causation ids.
    pub options: DispatchOptions,
    payload: Box<dyn Any + Send + Sync>,
    send: SendFn,
}

impl Debug for SentCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentCommand")
            .field("aggregate_type", &self.aggregate_type)
            .field("aggregate_id", &self.aggregate_id)
            .field("command", &self.command())
            .field("options", &self.options)
            .finish()
    }
}

impl SentCommand {
    /// The command's `Debug` text.
    pub fn command(&self) -> String {
        (self.describe)(self.payload.as_ref())
    }

    /// Dispatches (a copy of) the command on `kernel` with its options.
    pub(crate) fn send(&self, kernel: Kernel) -> SendFuture {
        (self.send)(
            kernel,
            &self.aggregate_id,
            self.payload.as_ref(),
            self.options.clone(),
        )
    }
}

fn describe<C: Debug + 'static>(payload: &(dyn Any + Send + Sync)) -> String {
    match payload.downcast_ref::<C>() {
        Some(command) => format!("{command:?}"),
        None => "<a command of another type>".to_owned(),
    }
}

fn send_as<A: Aggregate, C: Into<A::Command> + Clone + Send + Sync + 'static>(
    kernel: Kernel,
    id: &str,
    payload: &(dyn Any + Send + Sync),
    options: DispatchOptions,
) -> SendFuture {
    let command = payload.downcast_ref::<C>().cloned();
    let id = id.to_owned();
    Box::pin(async move {
        let Some(command) = command else {
            return Outcome::Rejected(format!(
                "internal: the command for `{}` has the wrong type",
                A::TYPE
            ));
        };
        match kernel.dispatch_with::<A>(&id, command, options).await {
            Ok(_) => Outcome::Done,
            Err(DispatchError::Rejected(e)) => Outcome::Rejected(e.to_string()),
            Err(DispatchError::NotRegistered) => Outcome::Rejected(format!(
                "aggregate type `{}` is not registered with the kernel",
                A::TYPE
            )),
            Err(e @ (DispatchError::Conflict { .. } | DispatchError::Panicked(_))) => {
                Outcome::Rejected(e.to_string())
            }
            Err(DispatchError::Store(e)) => Outcome::Retry(e.to_string()),
            Err(DispatchError::Shutdown) => Outcome::Shutdown,
        }
    })
}

/// Where a handler sends commands. The runner gives each handler call one.
///
/// ```
/// use es_core::process::Commands;
/// # use es_core::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Deposit { pub amount: u64 }
/// # #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// # pub struct Deposited { pub amount: u64 }
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # pub struct Account;
/// # #[aggregate(name = "account")]
/// # impl Account {
/// #     #[command]
/// #     fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
/// #         Ok(Deposited { amount: cmd.amount })
/// #     }
/// #     #[apply]
/// #     fn deposited(&mut self, _: &Deposited) {}
/// # }
/// let mut out = Commands::new("transfers", "t-1", 7);
/// out.dispatch::<Account>("acc-1", Deposit { amount: 5 });
/// assert_eq!(out.sent()[0].aggregate_id, "acc-1");
/// assert_eq!(
///     out.sent()[0].options.envelope.command_id(),
///     Some(es_core::process::command_id("transfers", "t-1", 7, 0).as_str())
/// );
/// assert!(!out.is_finished());
/// ```
#[derive(Debug)]
pub struct Commands {
    manager: &'static str,
    key: String,
    position: u64,
    next_index: u32,
    sent: Vec<SentCommand>,
    finished: bool,
}

impl Commands {
    /// Commands of manager `manager`'s instance `key`, triggered by the event at `position`.
    pub fn new(manager: &'static str, key: impl Into<String>, position: u64) -> Self {
        Self {
            manager,
            key: key.into(),
            position,
            next_index: 0,
            sent: Vec::new(),
            finished: false,
        }
    }

    /// Sends `command` to aggregate `id` of type `A`.
    ///
    /// The command is kept until it is answered (it is sent again, with the same id, after a
    /// store failure), hence `Clone`; its `Debug` text is what the testkit compares.
    pub fn dispatch<A: Aggregate>(
        &mut self,
        id: impl Into<String>,
        command: impl Into<A::Command> + Clone + Debug + Send + Sync + 'static,
    ) {
        self.dispatch_with::<A>(id, command, DispatchOptions::default());
    }

    /// Sends `command` with options (an expected version, tags, metadata). The command id,
    /// correlation id and causation id are always the runner's: deterministic, the instance
    /// key, the triggering event.
    pub fn dispatch_with<A: Aggregate>(
        &mut self,
        id: impl Into<String>,
        command: impl Into<A::Command> + Clone + Debug + Send + Sync + 'static,
        options: DispatchOptions,
    ) {
        self.push::<A, _>(id.into(), command, options);
    }

    fn push<A: Aggregate, C>(&mut self, id: String, command: C, options: DispatchOptions)
    where
        C: Into<A::Command> + Clone + Debug + Send + Sync + 'static,
    {
        let index = self.next_index;
        self.next_index += 1;
        let options = options
            .command_id(command_id(self.manager, &self.key, self.position, index))
            .correlation_id(self.key.as_str())
            .causation_id(causation_id(self.position));
        self.sent.push(SentCommand {
            aggregate_type: A::TYPE,
            aggregate_id: id,
            describe: describe::<C>,
            options,
            payload: Box::new(command),
            send: send_as::<A, C>,
        });
    }

    /// Ends the instance: its state is dropped once the commands sent with this event were
    /// answered (a rejection of one of them still reaches `#[rejected]` first).
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether [`Commands::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The commands sent so far and not yet dispatched.
    pub fn sent(&self) -> &[SentCommand] {
        &self.sent
    }

    /// Takes the commands sent so far.
    pub fn take(&mut self) -> Vec<SentCommand> {
        std::mem::take(&mut self.sent)
    }

    /// The instance key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The id of the `index`th command that manager `manager`'s instance `key` sent while handling
/// the event at `position` (rejections of those commands continue the count).
///
/// `{manager}/{key}/{position}/{index}`; a key longer than 128 bytes is replaced by a stable
/// 64-bit FNV-1a hash of it, so the id stays within the store's limit.
pub fn command_id(manager: &str, key: &str, position: u64, index: u32) -> String {
    // Written by hand rather than with `format!`: two ids per transfer, and the formatting
    // machinery cost about ten times as much as the copying.
    let mut id = String::with_capacity(manager.len() + key.len().min(128) + 40);
    id.push_str(manager);
    id.push('/');
    if key.len() > 128 {
        id.push_str(&format!("#{:016x}", fnv1a(key.as_bytes())));
    } else {
        id.push_str(key);
    }
    id.push('/');
    push_decimal(&mut id, position);
    id.push('/');
    push_decimal(&mut id, u64::from(index));
    id
}

/// The causation id of the commands an event at `position` triggered: `event@{position}`.
pub fn causation_id(position: u64) -> String {
    let mut id = String::with_capacity(26);
    id.push_str("event@");
    push_decimal(&mut id, position);
    id
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|d| char::from(*d)));
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Runs an event handler, turning a panic into an error.
pub(crate) fn handle_event<P: ProcessManager>(
    state: &mut P,
    event: &RecordedEvent,
    out: &mut Commands,
) -> Result<(), ProjectionError> {
    catch_unwind(AssertUnwindSafe(|| state.handle(event, out)))
        .unwrap_or_else(|p| Err(ProjectionError::Panicked(panic_message(p))))
        .map_err(|e| ProjectionError::At {
            name: P::NAME.to_owned(),
            position: event.position,
            source: Box::new(e),
        })
}

/// Runs the rejection handler, turning a panic into an error.
pub(crate) fn handle_rejection<P: ProcessManager>(
    state: &mut P,
    rejection: &Rejection,
    out: &mut Commands,
) -> Result<(), ProjectionError> {
    catch_unwind(AssertUnwindSafe(|| state.rejected(rejection, out)))
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

#[cfg(test)]
mod tests {
    use super::{causation_id, command_id};

    #[test]
    fn command_ids_are_readable_and_long_keys_are_hashed_stably() {
        assert_eq!(command_id("transfers", "t-1", 7, 2), "transfers/t-1/7/2");
        assert_eq!(causation_id(7), "event@7");
        assert_eq!(causation_id(0), "event@0");
        assert_eq!(
            command_id("m", "k", u64::MAX, u32::MAX),
            "m/k/18446744073709551615/4294967295"
        );
        assert_eq!(command_id("m", "", 10, 0), "m//10/0");
        let long = "k".repeat(300);
        let id = command_id("transfers", &long, 7, 0);
        assert!(id.len() < 64, "{id}");
        assert_eq!(id, command_id("transfers", &long, 7, 0));
        // FNV-1a 64 of the key: stable across runs, builds and platforms.
        assert_eq!(id, "transfers/#1f2d4d02dcfcfcf1/7/0");
        assert_ne!(id, command_id("transfers", &"k".repeat(301), 7, 0));
    }
}
