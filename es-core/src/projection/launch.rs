//! What starting a runner takes, with or without a kernel: choosing its checkpoint store,
//! restoring its state, and spawning its task.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::SystemClock;
use crate::follow::{self, Plan, Progress};
use crate::store::{CheckpointStore, EventStore};
use crate::tracker::{TaskToken, TaskTracker};

use super::dead_letter::Parked;
use super::error::ProjectionError;
use super::handle::ProjectionHandle;
use super::metrics::{ProjectionMetrics, ProjectionMetricsRef};
use super::options::ProjectionOptions;
use super::read_model::Projection;
use super::runner::{Runner, restore};
use super::shared::{Shared, StatusInner};

/// The checkpoint store a runner of `name` uses: the options', else `default`; refused when
/// there is none and the options do not ask for positions kept in memory only.
pub(super) fn checkpoints_for(
    name: &str,
    options: &ProjectionOptions,
    default: Option<&Arc<dyn CheckpointStore>>,
) -> Result<Option<Arc<dyn CheckpointStore>>, ProjectionError> {
    match options.checkpoint_store.as_ref().or(default) {
        Some(store) => Ok(Some(store.clone())),
        None if options.in_memory_checkpoints => Ok(None),
        None => Err(ProjectionError::NoCheckpointStore(name.to_owned())),
    }
}

/// The state, position and dead letters a runner starts from: `start_position` when given
/// (from `Default`, with none), else the saved checkpoint, else nothing.
pub(super) async fn initial<P: Projection>(
    options: &ProjectionOptions,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
) -> Result<(P, u64, Parked), ProjectionError> {
    match (&options.start_position, checkpoints) {
        (Some(start), _) => Ok((P::default(), start.saturating_sub(1), Parked::default())),
        (None, Some(store)) => {
            let checkpoint = store.load(P::NAME).await?;
            restore::<P>(checkpoint, options.persist_state)
        }
        (None, None) => Ok((P::default(), 0, Parked::default())),
    }
}

/// Everything a new runner needs.
pub(super) struct Launch {
    pub(super) store: Arc<dyn EventStore>,
    pub(super) checkpoints: Option<Arc<dyn CheckpointStore>>,
    pub(super) options: ProjectionOptions,
    pub(super) metrics: ProjectionMetricsRef,
    pub(super) token: TaskToken,
}

impl Launch {
    /// Spawns the runner of `P` from `state` at `position`, with the dead letters `parked`, on
    /// `runtime`.
    pub(super) fn spawn<P: Projection>(
        self,
        runtime: &tokio::runtime::Handle,
        (state, position, parked): (P, u64, Parked),
    ) -> ProjectionHandle<P> {
        // Until the runner knows it may run (its store elects no runner, or it holds the
        // lease), it stands by. Without a checkpoint store there is no election.
        let progress = Arc::new(Progress::new(position, self.checkpoints.is_some()));
        let shared = Arc::new(Shared {
            name: P::NAME,
            state: tokio::sync::Mutex::new(state),
            progress: progress.clone(),
            status: Mutex::new(StatusInner::default()),
            metrics: self.metrics,
            parked: Mutex::new(parked),
            store: Arc::downgrade(&self.store),
            checkpoints: self.checkpoints.as_ref().map(Arc::downgrade),
            persist_state: self.options.persist_state,
        });
        let count = shared.parked.lock().parked_count();
        shared.metrics.dead_letters.set(count as f64);
        let plan = Plan {
            kind: "projection",
            store: self.store,
            filter: P::event_filter(),
            batch: self.options.batch_size,
            poll: self.options.poll_interval,
            checkpoint: P::NAME.to_owned(),
            checkpoints: self.checkpoints,
            given_position: self.options.start_position.is_some(),
        };
        let runner = Runner {
            shared: shared.clone(),
            options: self.options,
        };
        follow::spawn(runtime, plan, progress, runner, Some(self.token));
        ProjectionHandle { shared }
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
    let checkpoints = checkpoints_for(P::NAME, &options, None)?;
    let initial = initial::<P>(&options, checkpoints.as_ref()).await?;
    let metrics = Arc::new(ProjectionMetrics::new(
        P::NAME,
        store.subscribe(),
        Arc::new(SystemClock),
    ));
    let launch = Launch {
        store,
        checkpoints,
        options,
        metrics,
        token: TaskTracker::default().token(),
    };
    Ok(launch.spawn(&runtime, initial))
}
