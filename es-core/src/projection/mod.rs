//! Projections: read models folded from the global log in position order.
//!
//! A projection is a `Default` state with one `#[on]` method per event type it handles; the
//! `#[projection]` macro writes its [`Projection`] impl. [`run_once`] folds the whole log once;
//! [`run_once_with`] catches up from a checkpoint and saves it; `kernel.projections().start::<P>(..)`
//! (or [`spawn`], without a kernel) keeps one up to date, with durable checkpoints in a
//! checkpoint store (the kernel's, or one in [`ProjectionOptions`]). A runner without one is
//! refused unless its options say [`ProjectionOptions::in_memory_checkpoints`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::event::{Event, EventError, EventSet};
use crate::panic::panic_message;
use crate::store::{EventFilter, EventStore, RecordedEvent, StoreError};

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
    /// The runner has no checkpoint store to resume from and save to.
    #[error(
        "projection `{0}` has no checkpoint store: build the kernel with `.store(..)` or \
         `.checkpoint_store(..)`, or give one with \
         `ProjectionOptions::default().checkpoint_store(..)`; to keep its position in memory \
         only (the whole log is read again after each restart), use \
         `ProjectionOptions::default().in_memory_checkpoints()`"
    )]
    NoCheckpointStore(String),
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
            .read_all_matching(next, RUN_ONCE_PAGE, P::event_filter())
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

/// Catches a projection up from its checkpoint and saves it (the original Erlang project's
/// `run_once` with options): resumes from the options' checkpoint store (state and position,
/// or from [`ProjectionOptions::start_position`] when given), processes the log up to its
/// head, saves the checkpoint after each page, and returns the state and the last position
/// processed (0 when none).
///
/// The checkpoint store is [`ProjectionOptions::checkpoint_store`]; without one the call is
/// refused ([`ProjectionError::NoCheckpointStore`]) unless the options say
/// [`ProjectionOptions::in_memory_checkpoints`], when it starts from position 1 and saves
/// nothing. Stops at the first error, which names the failing position; what was processed
/// before that page stays saved.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::projection::{ProjectionError, run_once_with};
///
/// #[derive(Debug, Default)]
/// struct Count(u64);
/// impl Projection for Count {
///     const NAME: &'static str = "count";
///     fn accepts(event_type: &str) -> bool {
///         event_type == "Ticked"
///     }
///     fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
///         self.0 += 1;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let tick = || vec![NewEvent::new("Ticked", b"{}".to_vec())];
/// let stream = StreamId::new("clock", "c-1");
/// store.append(&stream, ExpectedVersion::Any, tick()).await?;
/// let options = ProjectionOptions::default().checkpoint_store(store.clone());
/// let (count, last) = run_once_with::<Count>(&store, options.clone()).await?;
/// assert_eq!((count.0, last), (1, 1));
/// store.append(&stream, ExpectedVersion::Any, tick()).await?;
/// // Resumes at position 2 (`Count` keeps no state in its checkpoint, so only the new event
/// // is counted).
/// let (count, last) = run_once_with::<Count>(&store, options).await?;
/// assert_eq!((count.0, last), (1, 2));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`ProjectionError::NoCheckpointStore`], a store error, a state that cannot be restored or
/// saved, or the first failing event ([`ProjectionError::At`]).
pub async fn run_once_with<P: Projection>(
    store: &(impl EventStore + ?Sized),
    options: ProjectionOptions,
) -> Result<(P, u64), ProjectionError> {
    let checkpoints = launch::checkpoints_for(P::NAME, &options, None)?;
    let (mut state, mut last) = launch::initial::<P>(&options, checkpoints.as_ref()).await?;
    let filter = P::event_filter();
    loop {
        let page = store
            .read_all_matching(last + 1, options.batch_size.max(1), filter)
            .await?;
        if page.scanned == 0 {
            return Ok((state, last));
        }
        for event in &page.events {
            apply_event(&mut state, event)?;
        }
        last = page.scanned_to;
        if let Some(checkpoints) = &checkpoints {
            let bytes = if options.persist_state {
                state.encode_state().transpose()?
            } else {
                None
            };
            checkpoints.save(P::NAME, last, bytes).await?;
        }
    }
}

/// Starts a runner for `P` on `store` without a kernel (the original Erlang project's
/// `start_link`): it resumes from its checkpoint, catches up, then follows new events, and
/// [`ProjectionHandle::stop`] stops it.
///
/// `store` is any [`EventStore`]: a `Clone` store (`MemoryStore`, `LmdbStore`, ...) or an
/// `Arc<dyn Store>`. Checkpoints go to [`ProjectionOptions::checkpoint_store`] (often the same
/// store); without one the runner is refused ([`ProjectionError::NoCheckpointStore`]) unless
/// the options say [`ProjectionOptions::in_memory_checkpoints`].
///
/// ```
/// use es_core::prelude::*;
/// use es_core::projection::{ProjectionError, spawn};
///
/// #[derive(Debug, Default, Clone)]
/// struct Count(u64);
/// impl Projection for Count {
///     const NAME: &'static str = "count";
///     fn accepts(event_type: &str) -> bool {
///         event_type == "Ticked"
///     }
///     fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
///         self.0 += 1;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let options = ProjectionOptions::default().checkpoint_store(store.clone());
/// let handle = spawn::<Count>(store.clone(), options).await?;
/// let stream = StreamId::new("clock", "c-1");
/// let done = store
///     .append(&stream, ExpectedVersion::Any, vec![NewEvent::new("Ticked", b"{}".to_vec())])
///     .await?;
/// handle.wait_for(done.events[0].position).await?;
/// assert_eq!(handle.state().await.0, 1);
/// handle.stop().await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`ProjectionError::NoCheckpointStore`], a store error while restoring the checkpoint, a
/// saved state that cannot be restored, or [`ProjectionError::Stopped`] when called outside a
/// tokio runtime.
pub async fn spawn<P: Projection>(
    store: impl EventStore,
    options: ProjectionOptions,
) -> Result<ProjectionHandle<P>, ProjectionError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ProjectionError::Stopped {
        name: P::NAME.to_owned(),
        position: 0,
        reason: "a projection runner needs a tokio runtime: spawn it from within one".to_owned(),
    })?;
    let store: Arc<dyn EventStore> = Arc::new(store);
    let checkpoints = launch::checkpoints_for(P::NAME, &options, None)?;
    let (state, position) = launch::initial::<P>(&options, checkpoints.as_ref()).await?;
    let metrics = Arc::new(crate::metrics::ProjectionMetrics::new(
        P::NAME,
        store.subscribe(),
        Arc::new(crate::clock::SystemClock),
    ));
    let launch = launch::Launch {
        store,
        checkpoints,
        options,
        metrics,
        token: crate::tracker::TaskTracker::default().token(),
    };
    Ok(launch.spawn(&runtime, state, position))
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

mod handle;
mod launch;
mod options;
mod projections;
mod rebuild;
pub(crate) mod runner;

pub use handle::ProjectionHandle;
pub use options::{
    ErrorPolicy, ProjectionOptions, ProjectionPhase, ProjectionStatus, RebuildProgress,
    SkippedEvent,
};
pub use projections::Projections;
