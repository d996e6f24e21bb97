//! What starting a runner takes, with or without a kernel: choosing its checkpoint store,
//! restoring its state, and spawning its task.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::SystemClock;
use crate::follow::{self, Plan, Progress, ShareGate, SharedPages};
use crate::store::{CheckpointStore, EventStore};
use crate::tracker::TaskTracker;

use super::dead_letter::Parked;
use super::error::ProjectionError;
use super::group::Group;
use super::handle::ProjectionHandle;
use super::metrics::{ProjectionMetrics, ProjectionMetricsRef};
use super::options::ProjectionOptions;
use super::partition::{self, PartitionKeyFn, Route, partition_checkpoint};
use super::read_model::Projection;
use super::runner::{Runner, restore};
use super::shared::{Shared, StatusInner};
use super::spread;

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
/// (from `Default`, with none), else the checkpoint saved under `checkpoint`, else nothing.
pub(super) async fn initial<P: Projection>(
    options: &ProjectionOptions,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
    checkpoint: &str,
) -> Result<(P, u64, Parked), ProjectionError> {
    match (&options.start_position, checkpoints) {
        (Some(start), _) => Ok((P::default(), start.saturating_sub(1), Parked::default())),
        (None, Some(store)) => {
            let saved = store.load(checkpoint).await?;
            restore::<P>(saved, options.persist_state)
        }
        (None, None) => Ok((P::default(), 0, Parked::default())),
    }
}

/// Where each partition of `P` starts ([`initial`] of each one's checkpoint), after checking
/// that `P` may run in the partitions `options` ask for, with the key to route by.
pub(super) async fn initial_parts<P: Projection>(
    options: &ProjectionOptions,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
) -> Result<Parts<P>, ProjectionError> {
    let count = options.partitions.max(1);
    let key = partition::key_for(P::NAME, P::PARTITIONING, count, options.partition_by)?;
    if let Some(store) = checkpoints {
        partition::check_layout(store, P::NAME, count, true).await?;
    }
    let mut starts = Vec::with_capacity(count as usize);
    for index in 0..count {
        let checkpoint = partition_checkpoint(P::NAME, index, count);
        starts.push(initial::<P>(options, checkpoints, &checkpoint).await?);
    }
    Ok(Parts { key, starts })
}

/// Where the partitions of a projection start, and the key that routes events to them.
pub(super) struct Parts<P> {
    pub(super) key: Option<PartitionKeyFn>,
    /// Each partition's state, position and dead letters, in order.
    pub(super) starts: Vec<(P, u64, Parked)>,
}

/// Everything a new runner needs.
pub(super) struct Launch {
    pub(super) store: Arc<dyn EventStore>,
    pub(super) checkpoints: Option<Arc<dyn CheckpointStore>>,
    pub(super) options: ProjectionOptions,
    /// One per partition, in order.
    pub(super) metrics: Vec<ProjectionMetricsRef>,
    pub(super) tasks: TaskTracker,
}

impl Launch {
    /// Spawns the runners of `P`, one per partition of `parts`, on `runtime` (and, when there
    /// are several, what spreads them over processes).
    pub(super) fn spawn<P: Projection>(
        self,
        runtime: &tokio::runtime::Handle,
        parts: Parts<P>,
    ) -> ProjectionHandle<P> {
        let count = parts.starts.len() as u32;
        let gate = (count > 1 && self.checkpoints.is_some())
            .then(|| Arc::new(ShareGate::new(count as usize)));
        let spread = match (&gate, &self.checkpoints) {
            (Some(gate), Some(store)) => Some(spread::spawn(
                runtime,
                store.clone(),
                P::NAME,
                count,
                gate.clone(),
                self.tasks.token(),
            )),
            _ => None,
        };
        let mut shares = Vec::with_capacity(count as usize);
        // The partitions read each page of the log once between them.
        let pages = (count > 1).then(|| Arc::new(SharedPages::new(count as usize)));
        for (index, ((state, position, parked), metrics)) in
            parts.starts.into_iter().zip(self.metrics).enumerate()
        {
            let index = index as u32;
            let checkpoint = partition_checkpoint(P::NAME, index, count);
            // Until the runner knows it may run (its store elects no runner, or it holds the
            // lease), it stands by. Without a checkpoint store there is no election.
            let progress = Arc::new(Progress::new(position, self.checkpoints.is_some()));
            let shared = Arc::new(Shared {
                name: P::NAME,
                checkpoint: checkpoint.clone(),
                state: tokio::sync::Mutex::new(state),
                progress: progress.clone(),
                status: Mutex::new(StatusInner::default()),
                metrics,
                parked: Mutex::new(parked),
                store: Arc::downgrade(&self.store),
                checkpoints: self.checkpoints.as_ref().map(Arc::downgrade),
                persist_state: self.options.persist_state,
            });
            let count_parked = shared.parked.lock().parked_count();
            shared.metrics.dead_letters.set(count_parked as f64);
            let plan = Plan {
                kind: "projection",
                store: self.store.clone(),
                filter: P::event_filter(),
                batch: self.options.batch_size,
                poll: self.options.poll_interval,
                checkpoint,
                checkpoints: self.checkpoints.clone(),
                given_position: self.options.start_position.is_some(),
                gate: gate.clone(),
                pages: pages.clone(),
            };
            let runner = Runner {
                shared: shared.clone(),
                options: self.options.clone(),
                route: Route {
                    index,
                    count,
                    key: parts.key,
                },
            };
            follow::spawn(runtime, plan, progress, runner, Some(self.tasks.token()));
            shares.push(shared);
        }
        ProjectionHandle {
            group: Arc::new(Group {
                name: P::NAME,
                parts: shares,
                spread,
            }),
        }
    }
}

/// The metrics of each of the `partitions` partitions of projection `name`: labelled
/// `projection = name`, and `partition = "i/n"` when there are several.
pub(super) fn part_metrics(
    name: &'static str,
    partitions: u32,
    store: &dyn EventStore,
    clock: &Arc<dyn crate::clock::Clock>,
) -> Vec<ProjectionMetricsRef> {
    (0..partitions.max(1))
        .map(|index| {
            let label = (partitions > 1).then(|| format!("{index}/{partitions}"));
            Arc::new(ProjectionMetrics::new(
                name,
                label,
                store.subscribe(),
                clock.clone(),
            ))
        })
        .collect()
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
    let parts = initial_parts::<P>(&options, checkpoints.as_ref()).await?;
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(SystemClock);
    let metrics = part_metrics(P::NAME, options.partitions, store.as_ref(), &clock);
    let launch = Launch {
        store,
        checkpoints,
        options,
        metrics,
        tasks: TaskTracker::default(),
    };
    Ok(launch.spawn(&runtime, parts))
}
