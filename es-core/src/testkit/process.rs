//! Given/when/then for process managers: events in, commands out, no kernel, no store.

use std::collections::HashMap;
use std::fmt::Debug;

use chrono::{DateTime, Utc};

use crate::aggregate::Aggregate;
use crate::event::Event;
use crate::process::{Commands, ProcessManager, Rejection, SentCommand, route};
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
/// events, then one event (or one rejection) and what it sent.
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
    position: u64,
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
            position: 0,
        };
        for event in events {
            let then = test.feed(event);
            if let Err(e) = &then.result {
                panic!("a given event failed: {e}");
            }
            test.keep(then);
        }
        test
    }

    /// The live instance `key`, if any.
    pub fn instance(&self, key: &str) -> Option<&P> {
        self.instances.get(key)
    }

    /// Feeds one event and returns what it did.
    pub fn when(mut self, event: RecordedEvent) -> ProcessThen<P> {
        self.feed(event)
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
        let mut out = Commands::new(P::NAME, key, self.position);
        let result = state
            .rejected(&rejection, &mut out)
            .map_err(|e| e.to_string());
        ProcessThen {
            key: Some(key.to_owned()),
            finished: out.is_finished(),
            commands: out.take(),
            state: Some(state),
            result,
        }
    }

    fn feed(&mut self, mut event: RecordedEvent) -> ProcessThen<P> {
        if event.position == 0 {
            event.position = self.position + 1;
        }
        self.position = self.position.max(event.position);
        let Some((key, mut state)) = route(&mut self.instances, &event) else {
            return ProcessThen {
                key: None,
                state: None,
                commands: Vec::new(),
                finished: false,
                result: Ok(()),
            };
        };
        let mut out = Commands::new(P::NAME, key.clone(), event.position);
        let result = state.handle(&event, &mut out).map_err(|e| e.to_string());
        ProcessThen {
            key: Some(key),
            finished: out.is_finished(),
            commands: out.take(),
            state: Some(state),
            result,
        }
    }

    fn keep(&mut self, then: ProcessThen<P>) {
        if let (Some(key), Some(state), false) = (then.key, then.state, then.finished) {
            self.instances.insert(key, state);
        }
    }
}

/// What one event (or rejection) did in a [`ProcessTest`].
pub struct ProcessThen<P> {
    key: Option<String>,
    state: Option<P>,
    commands: Vec<SentCommand>,
    finished: bool,
    result: Result<(), String>,
}

impl<P: ProcessManager> ProcessThen<P> {
    /// The commands sent, with their envelope (deterministic command id, correlation and
    /// causation ids).
    pub fn commands(&self) -> &[SentCommand] {
        &self.commands
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
        assert!(self.finished, "the instance did not finish");
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

    /// Checks the instance's state after the event.
    ///
    /// # Panics
    ///
    /// When the event reached no instance, or `check` panics.
    pub fn then_state(self, check: impl FnOnce(&P)) -> Self {
        match &self.state {
            Some(state) => check(state),
            None => panic!("the event reached no instance"),
        }
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
