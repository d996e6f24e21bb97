//! Given past events, when a command, then these events or this error: aggregate tests that
//! need no runtime and no store.

use std::fmt::Debug;

use crate::aggregate::Aggregate;
use crate::event::{EventError, EventSet};
use crate::store::NewEvent;

/// A given/when/then test of one aggregate's domain logic.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::testkit::AggregateTest;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Add { pub n: u64 }
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct Added { pub n: u64 }
/// #[derive(Debug, thiserror::Error)]
/// #[error("too big")]
/// pub struct TooBig;
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// pub struct Counter { pub total: u64 }
///
/// #[aggregate(error = TooBig)]
/// impl Counter {
///     #[command]
///     fn add(&self, cmd: Add) -> Result<Added, TooBig> {
///         if self.total + cmd.n > 10 { return Err(TooBig); }
///         Ok(Added { n: cmd.n })
///     }
///     #[apply]
///     fn added(&mut self, e: &Added) { self.total += e.n; }
/// }
///
/// AggregateTest::<Counter>::given([Added { n: 4 }.into()])
///     .when(Add { n: 5 })
///     .then_expect_events([Added { n: 5 }.into()])
///     .then_state(|c| assert_eq!(c.total, 9));
/// AggregateTest::<Counter>::given([Added { n: 9 }.into()])
///     .when(Add { n: 5 })
///     .then_expect_error_matches(|e| matches!(e, TooBig));
/// ```
pub struct AggregateTest<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from the state obtained by applying `events` to the default state.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut state = A::default();
        for event in events {
            state.apply(&event);
        }
        Self { state }
    }

    /// Starts from the state obtained by applying stored events (name, version and payload as
    /// a store holds them, e.g. events of an older version, or under an alias), each decoded by
    /// the kernel's decode path, upcasters included.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::testkit::AggregateTest;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    /// #[event(version = 2, upcast(from = 1, with = added_v1))]
    /// pub struct Added { pub n: u64 }
    /// /// Version 1 stored the amount as `count`.
    /// fn added_v1(v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    ///     Ok(serde_json::json!({ "n": v["count"] }))
    /// }
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # pub struct Add { pub n: u64 }
    /// #[derive(Debug, Default, Serialize, Deserialize)]
    /// pub struct Counter { pub total: u64 }
    /// #[aggregate]
    /// impl Counter {
    /// #   #[command]
    /// #   fn add(&self, cmd: Add) -> Result<Added, std::convert::Infallible> { Ok(Added { n: cmd.n }) }
    ///     #[apply]
    ///     fn added(&mut self, e: &Added) { self.total += e.n; }
    /// }
    ///
    /// let old = NewEvent::new("Added", br#"{"count":4}"#.to_vec()).version(1);
    /// let test = AggregateTest::<Counter>::given_stored([old]).unwrap();
    /// assert_eq!(test.state().total, 4);
    /// ```
    ///
    /// # Errors
    ///
    /// The first event that does not decode, as the kernel would report it.
    pub fn given_stored(events: impl IntoIterator<Item = NewEvent>) -> Result<Self, EventError> {
        let mut state = A::default();
        for event in events {
            let event = A::Event::decode(&event.event_type, event.event_version, &event.payload)?;
            state.apply(&event);
        }
        Ok(Self { state })
    }

    /// Starts from the default state (a new aggregate).
    pub fn given_no_events() -> Self {
        Self {
            state: A::default(),
        }
    }

    /// The state before the command.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Handles one command against the given state.
    pub fn when(self, command: impl Into<A::Command>) -> Then<A> {
        let result = self.state.handle(command.into());
        Then {
            state: self.state,
            result,
        }
    }
}

/// The outcome of [`AggregateTest::when`], with assertions.
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A> {
    /// The command's result.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }

    /// Asserts the command produced exactly `expected`, in order. Events are compared by name,
    /// version and encoded payload, so event types need not implement `PartialEq`.
    #[track_caller]
    pub fn then_expect_events(self, expected: impl IntoIterator<Item = A::Event>) -> Self {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match &self.result {
            Ok(events) => {
                let same = events.len() == expected.len()
                    && events.iter().zip(&expected).all(|(a, b)| same_event(a, b));
                assert!(
                    same,
                    "{}: expected events {expected:#?}, got {events:#?}",
                    A::TYPE
                );
            }
            Err(e) => panic!(
                "{}: expected events {expected:#?}, the command was rejected: {e} ({e:?})",
                A::TYPE
            ),
        }
        self
    }

    /// Asserts the command was accepted and produced no event.
    #[track_caller]
    pub fn then_expect_no_events(self) -> Self {
        self.then_expect_events([])
    }

    /// Asserts the command was rejected with an error for which `predicate` holds.
    #[track_caller]
    pub fn then_expect_error_matches(self, predicate: impl FnOnce(&A::Error) -> bool) -> Self {
        match &self.result {
            Err(e) => assert!(predicate(e), "{}: unexpected error {e} ({e:?})", A::TYPE),
            Ok(events) => panic!(
                "{}: expected a rejection, the command produced {events:#?}",
                A::TYPE
            ),
        }
        self
    }

    /// Asserts the command was rejected with an error whose message is `message`.
    #[track_caller]
    pub fn then_expect_error_message(self, message: &str) -> Self {
        match &self.result {
            Err(e) => assert_eq!(e.to_string(), message, "{}: error message", A::TYPE),
            Ok(events) => panic!(
                "{}: expected the error `{message}`, the command produced {events:#?}",
                A::TYPE
            ),
        }
        self
    }

    /// Applies the produced events and hands the resulting state to `check`.
    #[track_caller]
    pub fn then_state(mut self, check: impl FnOnce(&A)) -> Self {
        if let Ok(events) = &self.result {
            for event in events {
                self.state.apply(event);
            }
        }
        check(&self.state);
        self
    }
}

impl<A: Aggregate> Debug for Then<A>
where
    A::Event: Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(events) => f.debug_tuple("Then::Ok").field(events).finish(),
            Err(e) => f.debug_tuple("Then::Err").field(&e.to_string()).finish(),
        }
    }
}

fn same_event<E: EventSet>(a: &E, b: &E) -> bool {
    a.event_type() == b.event_type()
        && a.event_version() == b.event_version()
        && match (a.encode(), b.encode()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}
