//! Given/when/then for process managers: events in, commands out, time moved by hand; no
//! kernel, no store.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::aggregate::Aggregate;
use crate::clock::{Clock, ManualClock};
use crate::event::Event;
use crate::process::{
    Commands, ProcessManager, Rejection, ScheduledDeadline, SentCommand, Timers, route,
};
use crate::store::{NewEvent, RecordedEvent, StreamId};

/// A stored event for a [`ProcessTest`]: `event` in stream `(aggregate_type, aggregate_id)`
/// with correlation id `correlation_id`. Its position is given by the test (in order).
///
/// # Panics
///
/// When the event does not serialize (a test helper: the panic is the failure report).
pub fn correlated<E: Event>(
    aggregate_type: &str,
    aggregate_id: &str,
    correlation_id: &str,
    event: E,
) -> RecordedEvent {
    let payload = match event.encode_payload() {
        Ok(payload) => payload,
        Err(e) => panic!("the event does not encode: {e}"),
    };
    NewEvent::new(E::NAME, payload)
        .version(E::VERSION)
        .correlation_id(correlation_id)
        .record(
            StreamId::new(aggregate_type, aggregate_id),
            1,
            0,
            DateTime::<Utc>::UNIX_EPOCH,
        )
}

/// A command a [`ProcessThen`] expects: aggregate type, id, and the command's `Debug` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedCommand {
    aggregate_type: &'static str,
    aggregate_id: String,
    command: String,
}

/// The command `command` sent to aggregate `id` of type `A`.
pub fn expect_command<A: Aggregate>(id: impl Into<String>, command: impl Debug) -> ExpectedCommand {
    ExpectedCommand {
        aggregate_type: A::TYPE,
        aggregate_id: id.into(),
        command: format!("{command:?}"),
    }
}

/// Drives a process manager's handlers without a runtime: the instances built from `given`
/// events, then one event (or one rejection, or a move of the clock) and what it sent; the
/// steps chain (`.when(..)`, `.advance(..)` again on what a step returned).
///
/// Time is a [`ManualClock`] that starts at the Unix epoch and moves only with
/// [`ProcessTest::advance`], which fires the deadlines that fell due, as the runner does. An
/// event whose timestamp is the epoch (as [`correlated`] makes them) is stamped with the
/// clock's time when it is fed; deadlines due at or before an event's timestamp fire before it.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::testkit::{ProcessTest, correlated, expect_command};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Ship { pub order: String }
/// # #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// # pub struct Shipped;
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # pub struct Warehouse;
/// # #[aggregate(name = "warehouse")]
/// # impl Warehouse {
/// #     #[command]
/// #     fn ship(&self, _: Ship) -> Result<Shipped, std::convert::Infallible> { Ok(Shipped) }
/// #     #[apply]
/// #     fn shipped(&mut self, _: &Shipped) {}
/// # }
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct OrderPlaced { pub order: String }
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct Fulfilment { pub order: String }
///
/// #[process_manager(name = "fulfilment")]
/// impl Fulfilment {
///     #[on(start)]
///     fn placed(&mut self, e: &Recorded<OrderPlaced>, out: &mut Commands) {
///         self.order = e.payload.order.clone();
///         out.dispatch::<Warehouse>("main", Ship { order: self.order.clone() });
///     }
///     #[on]
///     fn shipped(&mut self, _: &Recorded<Shipped>, out: &mut Commands) {
///         out.finish();
///     }
///     #[rejected]
///     fn refused(&mut self, _: &Rejection, out: &mut Commands) {
///         out.finish();
///     }
/// }
///
/// ProcessTest::<Fulfilment>::given([])
///     .when(correlated("order", "o-1", "o-1", OrderPlaced { order: "o-1".into() }))
///     .then_commands([expect_command::<Warehouse>("main", Ship { order: "o-1".into() })])
///     .then_state(|f| assert_eq!(f.order, "o-1"));
///
/// ProcessTest::<Fulfilment>::given([correlated("order", "o-1", "o-1", OrderPlaced { order: "o-1".into() })])
///     .when(correlated("warehouse", "main", "o-1", Shipped))
///     .then_no_commands()
///     .then_finished();
/// ```
pub struct ProcessTest<P> {
    instances: HashMap<String, P>,
    timers: Timers,
    clock: ManualClock,
    position: u64,
}

/// What one handler run did: its instance, commands, end and result.
struct Run<P> {
    key: String,
    commands: Vec<SentCommand>,
    /// The state of an instance that finished (the others stay in the test).
    finished: Option<P>,
    result: Result<(), String>,
}

impl<P: ProcessManager> ProcessTest<P> {
    /// Feeds `events` to the manager in order (their commands are taken as done). Events with
    /// position 0 get the next position.
    ///
    /// # Panics
    ///
    /// When a handler fails on one of them.
    pub fn given(events: impl IntoIterator<Item = RecordedEvent>) -> Self {
        let mut test = Self {
            instances: HashMap::new(),
            timers: Timers::default(),
            clock: ManualClock::new(DateTime::<Utc>::UNIX_EPOCH),
            position: 0,
        };
        for event in events {
            for run in test.feed(event).1 {
                if let Err(e) = &run.result {
                    panic!("a given event failed: {e}");
                }
            }
        }
        test
    }

    /// The live instance `key`, if any.
    pub fn instance(&self, key: &str) -> Option<&P> {
        self.instances.get(key)
    }

    /// The pending deadlines of instance `key`, in the order they were scheduled.
    pub fn deadlines(&self, key: &str) -> &[ScheduledDeadline] {
        self.timers.of(key)
    }

    /// The test's clock (it moves only with [`ProcessTest::advance`]).
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Feeds one event and returns what it did (with what the deadlines due before it did).
    pub fn when(mut self, event: RecordedEvent) -> ProcessThen<P> {
        let (reached, runs) = self.feed(event);
        ProcessThen::new(self, runs, reached)
    }

    /// Moves the clock forward by `by` and fires the deadlines that fell due, in due order,
    /// each once however far the clock jumps; returns what they did.
    pub fn advance(mut self, by: Duration) -> ProcessThen<P> {
        self.clock.advance(by);
        let runs = self.fire_due(self.clock.now());
        let reached = !runs.is_empty();
        ProcessThen::new(self, runs, reached)
    }

    /// Tells instance `key` that one of its commands was rejected.
    ///
    /// # Panics
    ///
    /// When there is no instance `key`.
    pub fn when_rejected(mut self, key: &str, rejection: Rejection) -> ProcessThen<P> {
        let Some(mut state) = self.instances.remove(key) else {
            panic!("no instance `{key}` to reject a command of");
        };
        let mut out = Commands::new(P::NAME, key, self.position).at(self.clock.now());
        let result = state
            .rejected(&rejection, &mut out)
            .map_err(|e| e.to_string());
        let run = self.settle(key.to_owned(), state, out, result);
        ProcessThen::new(self, vec![run], true)
    }

    /// Feeds one event: the deadlines due before it fire, then it reaches its instance (the
    /// `bool`: whether it did).
    fn feed(&mut self, mut event: RecordedEvent) -> (bool, Vec<Run<P>>) {
        if event.position == 0 {
            event.position = self.position + 1;
        }
        self.position = self.position.max(event.position);
        if event.timestamp == DateTime::<Utc>::UNIX_EPOCH {
            event.timestamp = self.clock.now();
        }
        let mut runs = self.fire_due(event.timestamp);
        let Some((key, mut state)) = route(&mut self.instances, &event) else {
            return (false, runs);
        };
        let mut out = Commands::new(P::NAME, key.clone(), event.position).at(event.timestamp);
        let result = state.handle(&event, &mut out).map_err(|e| e.to_string());
        runs.push(self.settle(key, state, out, result));
        (true, runs)
    }

    /// Fires the deadlines due at or before `until`, as the runner does.
    fn fire_due(&mut self, until: DateTime<Utc>) -> Vec<Run<P>> {
        let mark = self.timers.mark();
        let mut runs = Vec::new();
        loop {
            let keys = self.timers.due_keys(until, mark);
            if keys.is_empty() {
                return runs;
            }
            for key in keys {
                let Some(deadline) = self.timers.take_due(&key, until, mark) else {
                    continue;
                };
                let Some(mut state) = self.instances.remove(&key) else {
                    continue;
                };
                let mut out = Commands::for_deadline(P::NAME, key.clone(), &deadline);
                let result = state
                    .deadline(&deadline, &mut out)
                    .map_err(|e| e.to_string());
                runs.push(self.settle(key, state, out, result));
            }
        }
    }

    /// Keeps what a handler run did: the instance's state and deadlines, or its end.
    fn settle(
        &mut self,
        key: String,
        state: P,
        mut out: Commands,
        result: Result<(), String>,
    ) -> Run<P> {
        let result = match out.take_error() {
            Some(e) => result.and(Err(e.to_string())),
            None => result,
        };
        let commands = out.take();
        let finished = if out.is_finished() {
            self.timers.drop_instance(&key);
            Some(state)
        } else {
            self.timers.apply(&key, out.take_deadlines());
            self.instances.insert(key.clone(), state);
            None
        };
        Run {
            key,
            commands,
            finished,
            result,
        }
    }
}

/// What one step of a [`ProcessTest`] did: an event (with the deadlines due before it), a
/// rejection, or a move of the clock. Its assertions return it, and it goes on with the next
/// step (`when`, `when_rejected`, `advance`).
pub struct ProcessThen<P> {
    test: ProcessTest<P>,
    /// The instance the step reached last, if any.
    key: Option<String>,
    /// Its state, if it finished.
    finished: Option<P>,
    commands: Vec<SentCommand>,
    result: Result<(), String>,
}

impl<P: ProcessManager> ProcessThen<P> {
    fn new(test: ProcessTest<P>, runs: Vec<Run<P>>, reached: bool) -> Self {
        let mut then = Self {
            test,
            key: None,
            finished: None,
            commands: Vec::new(),
            result: Ok(()),
        };
        for run in runs {
            then.commands.extend(run.commands);
            if then.result.is_ok() {
                then.result = run.result;
            }
            then.key = Some(run.key);
            then.finished = run.finished;
        }
        if !reached {
            then.key = None;
            then.finished = None;
        }
        then
    }

    /// The commands sent, with their envelope (deterministic command id, correlation and
    /// causation ids).
    pub fn commands(&self) -> &[SentCommand] {
        &self.commands
    }

    /// The pending deadlines of the instance the step reached (none when it finished).
    pub fn deadlines(&self) -> &[ScheduledDeadline] {
        match &self.key {
            Some(key) => self.test.deadlines(key),
            None => &[],
        }
    }

    /// The test, to look at another instance or go on.
    pub fn test(&self) -> &ProcessTest<P> {
        &self.test
    }

    /// Goes on with another event.
    pub fn when(self, event: RecordedEvent) -> ProcessThen<P> {
        self.test.when(event)
    }

    /// Goes on with a rejection (see [`ProcessTest::when_rejected`]).
    ///
    /// # Panics
    ///
    /// When there is no instance `key`.
    pub fn when_rejected(self, key: &str, rejection: Rejection) -> ProcessThen<P> {
        self.test.when_rejected(key, rejection)
    }

    /// Goes on by moving the clock (see [`ProcessTest::advance`]).
    pub fn advance(self, by: Duration) -> ProcessThen<P> {
        self.test.advance(by)
    }

    /// Asserts that exactly these commands were sent, in order.
    ///
    /// # Panics
    ///
    /// When they differ, or the handler failed.
    pub fn then_commands(self, expected: impl IntoIterator<Item = ExpectedCommand>) -> Self {
        self.check_ok();
        let actual: Vec<ExpectedCommand> = self
            .commands
            .iter()
            .map(|c| ExpectedCommand {
                aggregate_type: c.aggregate_type,
                aggregate_id: c.aggregate_id.clone(),
                command: c.command(),
            })
            .collect();
        let expected: Vec<ExpectedCommand> = expected.into_iter().collect();
        assert_eq!(
            actual, expected,
            "the commands sent differ from those expected"
        );
        self
    }

    /// Asserts that no command was sent.
    ///
    /// # Panics
    ///
    /// When one was, or the handler failed.
    pub fn then_no_commands(self) -> Self {
        self.then_commands([])
    }

    /// Asserts that the instance finished (its state is dropped).
    ///
    /// # Panics
    ///
    /// When it did not.
    pub fn then_finished(self) -> Self {
        assert!(self.finished.is_some(), "the instance did not finish");
        self
    }

    /// Asserts that the event reached no instance (no key, or no instance and not a start).
    ///
    /// # Panics
    ///
    /// When it reached one.
    pub fn then_skipped(self) -> Self {
        assert!(
            self.key.is_none(),
            "the event reached instance {:?}",
            self.key
        );
        self
    }

    /// Checks the state of the instance the step reached, after it (its last state when it
    /// finished).
    ///
    /// # Panics
    ///
    /// When the step reached no instance, or `check` panics.
    pub fn then_state(self, check: impl FnOnce(&P)) -> Self {
        let state = match (&self.finished, &self.key) {
            (Some(state), _) => state,
            (None, Some(key)) => match self.test.instance(key) {
                Some(state) => state,
                None => panic!("instance `{key}` is gone"),
            },
            (None, None) => panic!("the step reached no instance"),
        };
        check(state);
        self
    }

    /// Asserts that the handler failed with a message containing `message`.
    ///
    /// # Panics
    ///
    /// When it did not fail, or failed otherwise.
    pub fn then_error_contains(self, message: &str) -> Self {
        match &self.result {
            Err(e) => assert!(
                e.contains(message),
                "the error `{e}` does not contain `{message}`"
            ),
            Ok(()) => panic!("the handler did not fail"),
        }
        self
    }

    fn check_ok(&self) {
        if let Err(e) = &self.result {
            panic!("the handler failed: {e}");
        }
    }
}
