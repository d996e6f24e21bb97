//! What starting a runner takes, with or without a kernel: choosing its checkpoint store,
//! restoring its state, and spawning its task.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::handle::{ProjectionHandle, Shared, StatusInner};
use super::options::{ProjectionOptions, ProjectionPhase};
use super::runner::{Election, Runner};
use super::{Projection, ProjectionError};
use crate::metrics::ProjectionMetricsRef;
use crate::store::{CheckpointStore, EventStore};
use crate::tracker::TaskToken;

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

/// The state and position a runner starts from: `start_position` when given (from `Default`),
/// else the saved checkpoint, else nothing.
pub(super) async fn initial<P: Projection>(
    options: &ProjectionOptions,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
) -> Result<(P, u64), ProjectionError> {
    match (&options.start_position, checkpoints) {
        (Some(start), _) => Ok((P::default(), start.saturating_sub(1))),
        (None, Some(store)) => restore::<P>(store.as_ref(), options.persist_state).await,
        (None, None) => Ok((P::default(), 0)),
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
    /// Spawns the runner of `P` from `state` at `position` on `runtime`.
    pub(super) fn spawn<P: Projection>(
        self,
        runtime: &tokio::runtime::Handle,
        state: P,
        position: u64,
    ) -> ProjectionHandle<P> {
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: P::NAME,
            state: tokio::sync::Mutex::new(state),
            processed: watch::Sender::new(position),
            status: Mutex::new(StatusInner {
                phase: ProjectionPhase::Running,
                rebuild: None,
                skipped_count: 0,
                skipped: VecDeque::new(),
                // Until the runner knows it may run (its store elects no runner, or it holds
                // the lease), it stands by. Without a checkpoint store there is no election.
                standby: self.checkpoints.is_some(),
            }),
            metrics: self.metrics,
            stop,
            task: Mutex::new(None),
        });
        let runner = Runner {
            shared: shared.clone(),
            store: self.store,
            election: self.checkpoints.as_ref().map(|_| Election::new(P::NAME)),
            checkpoints: self.checkpoints,
            resume_on_takeover: self.options.start_position.is_none(),
            options: self.options,
            stop: stop_rx,
            _p: PhantomData,
            _token: self.token,
        };
        // The handle is locked while spawning, so a `stop` cannot miss the task.
        let mut task = shared.task.lock();
        *task = Some(runtime.spawn(runner.run()));
        drop(task);
        ProjectionHandle { shared }
    }
}

/// The checkpoint of `P` in `store`: its position, with its state when it saved one.
pub(super) async fn restore<P: Projection>(
    store: &dyn CheckpointStore,
    persist: bool,
) -> Result<(P, u64), ProjectionError> {
    let Some(checkpoint) = store.load(P::NAME).await? else {
        return Ok((P::default(), 0));
    };
    if !persist {
        return Ok((P::default(), checkpoint.position));
    }
    match checkpoint.state.as_deref().map(P::decode_state) {
        Some(Some(Ok(state))) => Ok((state, checkpoint.position)),
        Some(Some(Err(e))) => Err(ProjectionError::State(format!(
            "the saved state of `{}` at position {} cannot be restored: {e}",
            P::NAME,
            checkpoint.position
        ))),
        // Nothing saved, or a projection that does not persist its state: it keeps its own
        // read model elsewhere and only needs the position.
        Some(None) | None => Ok((P::default(), checkpoint.position)),
    }
}
