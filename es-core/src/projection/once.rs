//! Folding the log once: from position 1 ([`run_once`]), or from a checkpoint, saving it
//! ([`run_once_with`]).

use crate::store::EventStore;

use super::dead_letter::{park_behind, wrap_state};
use super::error::ProjectionError;
use super::launch;
use super::options::ProjectionOptions;
use super::read_model::{Projection, apply_event};

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
/// before that page stays saved. Dead letters that a runner parked
/// ([`ErrorPolicy::Park`](super::ErrorPolicy::Park)) stay in the checkpoint, and later events
/// of their streams are parked behind them, in order.
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
    if options.partitions > 1 {
        return Err(ProjectionError::Partitions {
            name: P::NAME.to_owned(),
            reason: "`run_once_with` folds one state: run a partitioned projection with \
                     `spawn` or `kernel.projections().start`"
                .to_owned(),
        });
    }
    let checkpoints = launch::checkpoints_for(P::NAME, &options, None)?;
    // Dead letters a managed runner parked are kept, and later events of their streams park
    // behind them (this fold parks no failing event of its own: it returns the error).
    let (mut state, mut last, mut parked) =
        launch::initial::<P>(&options, checkpoints.as_ref(), P::NAME).await?;
    let filter = P::event_filter();
    loop {
        let page = store
            .read_all_matching(last + 1, options.batch_size.max(1), filter)
            .await?;
        if page.scanned == 0 {
            return Ok((state, last));
        }
        for event in &page.events {
            // A stream with parked events keeps its order: later events park behind them.
            if !park_behind(&mut parked, event) {
                apply_event(&mut state, event)?;
            }
        }
        last = page.scanned_to;
        if let Some(checkpoints) = &checkpoints {
            let bytes = if options.persist_state {
                state.encode_state().transpose()?
            } else {
                None
            };
            checkpoints
                .save(P::NAME, last, wrap_state(bytes, &parked)?)
                .await?;
        }
    }
}
