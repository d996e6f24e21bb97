//! [`Commands`]: what a handler sends (commands, deadlines, the end of its instance), and how
//! the runner dispatches a command it sent ([`SentCommand`]).

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::aggregate::Aggregate;
use crate::event::{Event, EventError};
use crate::kernel::{DispatchError, DispatchOptions, Kernel};

use super::deadline::{DeadlineOp, ScheduledDeadline};
use super::ids::Trigger;

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
            Err(
                e @ (DispatchError::Conflict { .. }
                | DispatchError::Panicked(_)
                | DispatchError::StreamDeleted { .. }),
            ) => Outcome::Rejected(e.to_string()),
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
    trigger: Trigger,
    /// When the trigger happened: relative deadlines count from it.
    now: DateTime<Utc>,
    next_index: u32,
    next_deadline: u32,
    sent: Vec<SentCommand>,
    deadlines: Vec<DeadlineOp>,
    /// A deadline that did not encode: the handler fails with it.
    error: Option<EventError>,
    finished: bool,
}

impl Commands {
    /// Commands of manager `manager`'s instance `key`, triggered by the event at `position`.
    /// Deadlines scheduled with a delay count from the Unix epoch until [`Commands::at`] says
    /// when the event happened.
    pub fn new(manager: &'static str, key: impl Into<String>, position: u64) -> Self {
        Self::triggered(manager, key.into(), Trigger::Event(position))
    }

    /// The commands of instance `key`'s handler of `deadline`: their ids derive from the
    /// deadline's, and deadlines it schedules with a delay count from its due time.
    pub(crate) fn for_deadline(
        manager: &'static str,
        key: impl Into<String>,
        deadline: &ScheduledDeadline,
    ) -> Self {
        Self::triggered(
            manager,
            key.into(),
            Trigger::Deadline(deadline.id().to_owned()),
        )
        .at(deadline.due())
    }

    fn triggered(manager: &'static str, key: String, trigger: Trigger) -> Self {
        Self {
            manager,
            key,
            trigger,
            now: DateTime::<Utc>::UNIX_EPOCH,
            next_index: 0,
            next_deadline: 0,
            sent: Vec::new(),
            deadlines: Vec::new(),
            error: None,
            finished: false,
        }
    }

    /// Says when the triggering event happened (its timestamp): deadlines scheduled with
    /// [`Commands::schedule`] fall due that long after it. The runner always says so.
    #[must_use]
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
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
            .command_id(self.trigger.command_id(self.manager, &self.key, index))
            .correlation_id(self.key.as_str())
            .causation_id(self.trigger.causation_id());
        self.sent.push(SentCommand {
            aggregate_type: A::TYPE,
            aggregate_id: id,
            describe: describe::<C>,
            options,
            payload: Box::new(command),
            send: send_as::<A, C>,
        });
    }

    /// Sets a deadline: `deadline` reaches the instance's `#[on(deadline)]` handler for its
    /// type once the kernel's clock passed `after` from the triggering event's timestamp (from
    /// the due time, in a deadline's handler). It is saved with the instance, so it survives a
    /// restart and a takeover by another node, and it fires once; it is dropped when the
    /// instance finishes first, or when [`Commands::cancel`] cancels it.
    ///
    /// The deadline's type is a user type with `#[derive(Event)]` (it is stored, by name and
    /// version). A deadline that does not serialize makes the handler fail.
    pub fn schedule<D: Event>(&mut self, after: Duration, deadline: D) {
        let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let due = self
            .now
            .checked_add_signed(after)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.schedule_at(due, deadline);
    }

    /// Sets a deadline that falls due at `at` by the kernel's clock (see
    /// [`Commands::schedule`]).
    pub fn schedule_at<D: Event>(&mut self, at: DateTime<Utc>, deadline: D) {
        let id = self.trigger.deadline_id(self.next_deadline);
        self.next_deadline += 1;
        match ScheduledDeadline::new(id, at, &deadline) {
            Ok(deadline) => self.deadlines.push(DeadlineOp::Schedule(deadline)),
            Err(e) => self.error = Some(e),
        }
    }

    /// Cancels the instance's pending deadlines of type `D`, those scheduled earlier in this
    /// handler included.
    pub fn cancel<D: Event>(&mut self) {
        self.deadlines.push(DeadlineOp::Cancel(D::answers_to));
    }

    /// The deadlines scheduled so far (cancellations aside), in order.
    pub fn scheduled(&self) -> impl Iterator<Item = &ScheduledDeadline> {
        self.deadlines.iter().filter_map(|op| match op {
            DeadlineOp::Schedule(d) => Some(d),
            DeadlineOp::Cancel(_) => None,
        })
    }

    /// Takes what the handler did to its deadlines, in order.
    pub(crate) fn take_deadlines(&mut self) -> Vec<DeadlineOp> {
        std::mem::take(&mut self.deadlines)
    }

    /// Takes the error of a deadline that did not encode, if any.
    pub(crate) fn take_error(&mut self) -> Option<EventError> {
        self.error.take()
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
