//! Given events, then this state: projection tests that need no runtime and no store.

use std::collections::HashMap;

use chrono::Utc;

use crate::event::{EventError, EventSet};
use crate::projection::{Projection, ProjectionError, apply_event};
use crate::store::{RecordedEvent, StreamId};

/// An event of `aggregate_type`/`aggregate_id`, encoded as the kernel stores it, for
/// [`ProjectionTest::given`]. Its position and sequence are given by `given` (in order).
///
/// # Errors
///
/// The event's encoding error.
pub fn recorded<E: EventSet>(
    aggregate_type: &str,
    aggregate_id: &str,
    event: &E,
) -> Result<RecordedEvent, EventError> {
    Ok(event.to_new_event()?.record(
        StreamId::new(aggregate_type, aggregate_id),
        0,
        0,
        Utc::now(),
    ))
}

/// A given/then test of one projection: the given events are folded into its default state
/// through the runner's own path (the envelope filter, then the payload decoded by the
/// handlers, upcasters included), so what is tested is what a runner would do.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::testkit::{ProjectionTest, recorded};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct Added { pub n: u64 }
///
/// #[derive(Debug, Default)]
/// pub struct Total { pub n: u64 }
///
/// #[projection(name = "total")]
/// impl Total {
///     #[on]
///     fn added(&mut self, e: &Recorded<Added>) { self.n += e.payload.n; }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// ProjectionTest::<Total>::given([
///     recorded("counter", "c-1", &Added { n: 2 })?,
///     recorded("counter", "c-2", &Added { n: 3 })?,
/// ])
/// .then_state(|t| assert_eq!(t.n, 5));
/// # Ok(())
/// # }
/// ```
pub struct ProjectionTest<P: Projection> {
    result: Result<P, ProjectionError>,
}

impl<P: Projection> ProjectionTest<P> {
    /// Folds `events` into the default state in the order given. Each event gets the next
    /// position (from 1) and the next sequence of its stream; the rest of its envelope is kept.
    /// The first failing event stops the fold (see [`ProjectionTest::then_error`]).
    pub fn given(events: impl IntoIterator<Item = RecordedEvent>) -> Self {
        let mut state = P::default();
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        for (position, mut event) in (1u64..).zip(events) {
            let version = versions.entry(event.stream.clone()).or_default();
            *version += 1;
            event.sequence = *version;
            event.position = position;
            if let Err(e) = apply_event(&mut state, &event) {
                return Self { result: Err(e) };
            }
        }
        Self { result: Ok(state) }
    }

    /// Checks the state.
    ///
    /// # Panics
    ///
    /// When an event failed (the panic names it).
    #[track_caller]
    pub fn then_state(self, check: impl FnOnce(&P)) -> P {
        match self.result {
            Ok(state) => {
                check(&state);
                state
            }
            Err(e) => panic!("expected a state, but an event failed: {e}"),
        }
    }

    /// Checks the error of the event that failed.
    ///
    /// # Panics
    ///
    /// When every event was handled.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&ProjectionError)) {
        match self.result {
            Ok(_) => panic!("expected an event to fail, but all were handled"),
            Err(e) => check(&e),
        }
    }
}
