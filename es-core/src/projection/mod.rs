//! Projections: read models folded from the global log in position order.
//!
//! A projection is a `Default` state with one `#[on]` method per event type it handles; the
//! `#[projection]` macro writes its [`Projection`] impl. [`run_once`] folds the whole log once;
//! `kernel.projections().start::<P>(..)` keeps one up to date, with durable checkpoints when
//! there is a checkpoint store (the kernel's, or one in [`ProjectionOptions`]): a kernel built
//! with `.event_store(..)` alone has none, and its runners start over from position 1 after a
//! restart.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::event::{Event, EventError, EventSet};
use crate::panic::panic_message;
use crate::store::{EventStore, RecordedEvent, StoreError};

/// A read model built from events. Written by `#[projection]`, or by hand.
pub trait Projection: Default + Send + Sync + 'static {
    /// The projection's unique name (its checkpoint key).
    const NAME: &'static str;

    /// Whether the projection handles events of this type. Events it does not accept are
    /// skipped without decoding their payload (they still advance the checkpoint).
    fn accepts(event_type: &str) -> bool;

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

/// Errors of projections and their runners.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// An accepted event could not be decoded.
    #[error("cannot decode event: {0}")]
    Decode(#[from] EventError),
    /// A handler returned an error.
    #[error("handler failed: {0}")]
    Handler(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// A handler panicked; the message is the panic's. The runner's error policy decides what
    /// happens next, as for an error (the state may hold part of that event's changes).
    #[error("handler panicked: {0}")]
    Panicked(String),
    /// The projection's state could not be saved or restored.
    #[error("projection state: {0}")]
    State(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Handling the event at `position` failed.
    #[error("projection `{name}` failed at position {position}: {source}")]
    At {
        /// The projection.
        name: String,
        /// The position of the failing event.
        position: u64,
        /// What failed.
        #[source]
        source: Box<ProjectionError>,
    },
    /// The projection runner has stopped.
    #[error("projection `{name}` stopped at position {position}: {reason}")]
    Stopped {
        /// The projection.
        name: String,
        /// The last position it processed.
        position: u64,
        /// Why it stopped.
        reason: String,
    },
    /// A runner of that name is already running.
    #[error("projection `{0}` is already running")]
    AlreadyRunning(String),
    /// No runner of that name exists.
    #[error("no projection named `{0}` is running")]
    NotFound(String),
}

/// The page size [`run_once`] reads the log in.
pub const RUN_ONCE_PAGE: usize = 4096;

/// Catches a projection up from position 0 and returns its state (the original Erlang project's `run_once`).
///
/// Stops at the first error, which names the failing position.
pub async fn run_once<P: Projection>(
    store: &(impl EventStore + ?Sized),
) -> Result<P, ProjectionError> {
    let mut state = P::default();
    let mut next = 1;
    loop {
        let page = store
            .read_all_filtered(next, RUN_ONCE_PAGE, P::accepts)
            .await?;
        if page.scanned == 0 {
            return Ok(state);
        }
        for event in &page.events {
            apply_event(&mut state, event)?;
        }
        next = page.scanned_to + 1;
    }
}

/// Feeds one event to a projection if it accepts it, naming the position on failure.
pub(crate) fn apply_event<P: Projection>(
    state: &mut P,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    if !P::accepts(&event.event_type) {
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

mod handle;
mod options;
mod projections;
mod runner;

pub use handle::ProjectionHandle;
pub use options::{
    ErrorPolicy, ProjectionOptions, ProjectionPhase, ProjectionStatus, SkippedEvent,
};
pub use projections::Projections;
