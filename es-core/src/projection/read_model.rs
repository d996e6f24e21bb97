//! The [`Projection`] trait a read model implements, what its `#[on]` handlers may take and
//! return, and how one event is fed to it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::event::{Event, EventSet};
use crate::panic::panic_message;
use crate::store::{EventFilter, RecordedEvent};

use super::error::ProjectionError;
use super::partition::Partitioning;

/// A read model built from events. Written by `#[projection]`, or by hand.
pub trait Projection: Default + Send + Sync + 'static {
    /// The projection's unique name (its checkpoint key).
    const NAME: &'static str;

    /// Whether the projection handles events of this type. Events it does not accept are
    /// skipped without decoding their payload (they still advance the checkpoint).
    fn accepts(event_type: &str) -> bool;

    /// Only events of streams of this aggregate type are handled (`#[projection(aggregate =
    /// "...")]`); checked before any payload is decoded. `None`: streams of any type.
    const AGGREGATE_TYPE: Option<&'static str> = None;

    /// A check of the whole envelope (stream, type, tags, metadata) an event must also pass to
    /// be handled (`#[projection(filter = path)]`), run before its payload is decoded. `None`:
    /// no such check.
    const FILTER: Option<fn(&RecordedEvent) -> bool> = None;

    /// How the state divides among partitions ([`ProjectionOptions::partitions`]): by default
    /// [`Partitioning::Single`], a state that is one value and runs in one partition only.
    /// `#[projection(partition_by = "stream")]` (or `partition_by = key_fn`) declares a state
    /// kept per key.
    ///
    /// [`ProjectionOptions::partitions`]: super::ProjectionOptions::partitions
    const PARTITIONING: Partitioning = Partitioning::Single;

    /// The filter a runner reads the log with: [`Projection::accepts`],
    /// [`Projection::AGGREGATE_TYPE`] and [`Projection::FILTER`] together. Events it does not
    /// match are skipped without decoding their payload (they still advance the checkpoint).
    fn event_filter() -> EventFilter {
        EventFilter {
            event_type: Self::accepts,
            aggregate_type: Self::AGGREGATE_TYPE,
            envelope: Self::FILTER,
        }
    }

    /// Folds one accepted event into the state.
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// The state serialized for a checkpoint, or `None` when the projection does not persist
    /// its state. `#[projection]` persists it (JSON) whenever the type implements `Serialize`
    /// and `DeserializeOwned`.
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        None
    }

    /// Restores a state saved by [`Projection::encode_state`], or `None` when the projection does
    /// not persist its state.
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        let _ = bytes;
        None
    }
}

/// What an `#[on]` handler can take as `&Recorded<T>`: one event type (every [`Event`] is one),
/// or the event enum `#[aggregate]` generates (`{Type}Event`), which gets every event of that
/// aggregate.
///
/// The generated projection accepts the set's names ([`EventSet::contains`], which is also
/// where a set lists older names it still decodes) and, for an aggregate's enum, only events of
/// streams of that aggregate type, checked before the payload is decoded.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::projection::OnEvents;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # pub struct Deposit { pub amount: u64 }
/// #[derive(Debug, Clone, Serialize, Deserialize, Event)]
/// pub struct Deposited { pub amount: u64 }
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
///
/// assert_eq!(<Deposited as OnEvents>::AGGREGATE_TYPE, None);
/// assert_eq!(<AccountEvent as OnEvents>::AGGREGATE_TYPE, Some("account"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "this type does not implement `Event`",
    note = "add `#[derive(Event)]` (and `Serialize`, `Deserialize`, `Clone`, `Debug`) to `{Self}`; an `#[on]` handler takes `&Recorded<E>` where `E` is one event type or the event enum an `#[aggregate]` generates"
)]
pub trait OnEvents: EventSet {
    /// `Some(Aggregate::TYPE)` for an aggregate's event enum: only events of that aggregate's
    /// streams are handled. `None` for a single event type: its events are handled whichever
    /// stream they are in.
    const AGGREGATE_TYPE: Option<&'static str>;
}

impl<E: Event> OnEvents for E {
    const AGGREGATE_TYPE: Option<&'static str> = None;
}

/// What a projection handler may return: `()` or `Result<(), E>` with `E: std::error::Error`.
#[diagnostic::on_unimplemented(
    message = "an `#[on]` handler cannot return `{Self}`",
    label = "return `()` or `Result<(), E>` where `E: std::error::Error + Send + Sync + 'static`"
)]
pub trait HandlerOutcome {
    /// Converts the handler's return value.
    fn into_outcome(self) -> Result<(), ProjectionError>;
}

impl HandlerOutcome for () {
    fn into_outcome(self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> HandlerOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), ProjectionError> {
        self.map_err(|e| ProjectionError::Handler(Arc::new(e)))
    }
}

/// Feeds one event to a projection if it accepts it, naming the position on failure.
pub(crate) fn apply_event<P: Projection>(
    state: &mut P,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    if !P::event_filter().matches(event) {
        return Ok(());
    }
    // A panicking handler is an error like any other: the runner applies its policy instead of
    // its task dying with the runner still reported as running.
    let handled = catch_unwind(AssertUnwindSafe(|| state.handle(event)))
        .unwrap_or_else(|p| Err(ProjectionError::Panicked(panic_message(p))));
    handled.map_err(|e| ProjectionError::At {
        name: P::NAME.to_owned(),
        position: event.position,
        source: Box::new(e),
    })
}
