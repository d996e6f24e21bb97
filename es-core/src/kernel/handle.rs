//! The [`Kernel`] handle: dispatch, state, live count, shutdown.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use crate::aggregate::Aggregate;
use crate::projection::Projections;
use crate::store::{CheckpointStore, EventStore, SnapshotStore};

use super::actor::{self, AnyRegistry, Registry};
use super::builder::{Config, KernelBuilder};
use super::tracker::TaskTracker;
use super::{Committed, DispatchError, DispatchOptions};

/// The runtime: routes commands to one actor per live aggregate.
///
/// `Kernel` is a cheap `Clone` handle; every clone drives the same actors. See the crate docs
/// for an example.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<KernelInner>,
}

pub(crate) struct KernelInner {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) event_store: Arc<dyn EventStore>,
    pub(crate) snapshot_store: Option<Arc<dyn SnapshotStore>>,
    pub(crate) config: Config,
    registries: HashMap<TypeId, Arc<dyn AnyRegistry>>,
    pub(crate) live: std::sync::atomic::AtomicUsize,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: TaskTracker,
    projections: Projections,
    /// The origin of the kernel clock used for passivation.
    epoch: std::time::Instant,
}

impl KernelInner {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        event_store: Arc<dyn EventStore>,
        snapshot_store: Option<Arc<dyn SnapshotStore>>,
        checkpoint_store: Option<Arc<dyn CheckpointStore>>,
        config: Config,
        registries: HashMap<TypeId, Arc<dyn AnyRegistry>>,
    ) -> Self {
        let projections = Projections::new(runtime.clone(), event_store.clone(), checkpoint_store);
        Self {
            runtime,
            event_store,
            snapshot_store,
            config,
            registries,
            live: std::sync::atomic::AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
            tasks: TaskTracker::default(),
            projections,
            epoch: std::time::Instant::now(),
        }
    }

    /// Microseconds since the kernel started.
    pub(crate) fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn registry<A: Aggregate>(&self) -> Option<&Registry<A>> {
        self.registries
            .get(&TypeId::of::<A>())
            .and_then(|r| r.as_any().downcast_ref::<Registry<A>>())
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl Kernel {
    /// A builder for a kernel.
    pub fn builder() -> KernelBuilder {
        KernelBuilder::default()
    }

    pub(crate) fn from_inner(inner: KernelInner) -> Self {
        let inner = Arc::new(inner);
        inner.runtime.spawn(sweep(Arc::downgrade(&inner)));
        Self { inner }
    }

    fn registry<A: Aggregate>(&self) -> Result<&Registry<A>, DispatchError<A::Error>> {
        self.inner
            .registry::<A>()
            .ok_or(DispatchError::NotRegistered)
    }

    /// Sends a command to aggregate `id` of type `A` and waits for it to commit or fail.
    ///
    /// Commands to one aggregate run one at a time in arrival order; commands to different
    /// aggregates run concurrently.
    pub async fn dispatch<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
        command: impl Into<A::Command>,
    ) -> Result<Committed, DispatchError<A::Error>>
    where
        A::Command: Clone,
    {
        self.send::<A>(id.as_ref(), command.into(), None).await
    }

    /// Like [`Kernel::dispatch`], with an expected version, metadata and a command id.
    pub async fn dispatch_with<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
        command: impl Into<A::Command>,
        options: DispatchOptions,
    ) -> Result<Committed, DispatchError<A::Error>>
    where
        A::Command: Clone,
    {
        self.send::<A>(id.as_ref(), command.into(), Some(Box::new(options)))
            .await
    }

    async fn send<A: Aggregate>(
        &self,
        id: &str,
        command: A::Command,
        options: Option<Box<DispatchOptions>>,
    ) -> Result<Committed, DispatchError<A::Error>>
    where
        A::Command: Clone,
    {
        let registry = self.registry::<A>()?;
        let span = tracing::debug_span!(
            "command",
            aggregate = A::TYPE,
            id,
            version = tracing::field::Empty
        );
        let result = actor::dispatch(&self.inner, registry, id, command, options)
            .instrument(span.clone())
            .await;
        if let Ok(done) = &result {
            span.record("version", done.version);
        }
        result
    }

    /// The current state of aggregate `id` (rehydrated if it is not live).
    pub async fn state<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
    ) -> Result<A, DispatchError<A::Error>>
    where
        A::Command: Clone,
    {
        let registry = self.registry::<A>()?;
        actor::state(&self.inner, registry, id.as_ref()).await
    }

    /// The number of aggregates with a running actor.
    pub fn live_aggregates(&self) -> usize {
        self.inner.live.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The projection runners of this kernel.
    pub fn projections(&self) -> &Projections {
        &self.inner.projections
    }

    /// The kernel's event store.
    pub fn event_store(&self) -> &Arc<dyn EventStore> {
        &self.inner.event_store
    }

    /// Stops every actor and projection runner and waits for them: batches being handled
    /// finish and commit, commands still queued are answered with [`DispatchError::Shutdown`],
    /// and snapshot writes in flight complete. Later dispatches fail with `Shutdown`.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        // Actors are asked to stop through their mailboxes, so an actor's hot loop never has
        // to watch a shutdown signal.
        for registry in self.inner.registries.values() {
            registry.stop_all();
        }
        self.inner.projections.stop_all().await;
        self.inner.tasks.wait_idle().await;
    }
}

/// Offers passivation to idle actors, a few times per `passivate_after`, until the kernel is
/// dropped or shut down. Idle actors hold no timer and never wake up on their own.
async fn sweep(kernel: std::sync::Weak<KernelInner>) {
    let Some(idle) = kernel.upgrade().map(|k| k.config.passivate_after) else {
        return;
    };
    let every = (idle / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let idle_micros = u64::try_from(idle.as_micros()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(kernel) = kernel.upgrade() else {
            return;
        };
        if kernel.is_shut_down() {
            return;
        }
        let Some(idle_since) = kernel.now_micros().checked_sub(idle_micros) else {
            continue;
        };
        for registry in kernel.registries.values() {
            registry.sweep(idle_since);
        }
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("live_aggregates", &self.live_aggregates())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
