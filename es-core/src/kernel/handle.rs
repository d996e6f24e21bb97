//! The [`Kernel`] handle: dispatch, state, live count, shutdown.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use crate::aggregate::Aggregate;
use crate::clock::Clock;
use crate::erasure::ErasureLayer;
use crate::projection::Projections;
use crate::store::{CheckpointStore, EventStore};

use super::context::{Config, Context, IdleClock};
use super::extensions::{Extension, Extensions};
use super::metrics::{AggregateStats, KernelStats};
use super::registry::{AnyRegistry, Registry};
use super::{Committed, DispatchError, DispatchOptions};

/// The registries of a kernel, by aggregate type.
pub(crate) type Registries = HashMap<TypeId, Arc<dyn AnyRegistry>>;

/// The runtime: routes commands to one actor per live aggregate.
///
/// `Kernel` is a cheap `Clone` handle; every clone drives the same actors. Build one with
/// [`Kernel::builder`]; see the crate docs for an example.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<KernelInner>,
}

struct KernelInner {
    /// What the actors share (the stores among it).
    ctx: Arc<Context>,
    registries: Arc<Registries>,
    projections: Projections,
    /// The kernel's default checkpoint store (projections and process managers).
    checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// What was started on top of the kernel (process managers), stopped first at shutdown.
    extensions: Extensions,
    /// Tells the passivation sweeper to end; dropping it does too.
    stop_sweeper: watch::Sender<bool>,
    config: Config,
    /// Seals and opens PII fields; forgets subjects.
    erasure: Arc<ErasureLayer>,
}

impl Kernel {
    /// Assembles a kernel and starts its passivation sweeper.
    pub(crate) fn new(
        ctx: Context,
        registries: Registries,
        projections: Projections,
        checkpoint_store: Option<Arc<dyn CheckpointStore>>,
        config: Config,
        erasure: Arc<ErasureLayer>,
    ) -> Self {
        let registries = Arc::new(registries);
        let (stop_sweeper, stopped) = watch::channel(false);
        ctx.runtime.spawn(sweep(
            registries.clone(),
            ctx.idle,
            config.passivate_after,
            stopped,
        ));
        Self {
            inner: Arc::new(KernelInner {
                ctx: Arc::new(ctx),
                registries,
                projections,
                checkpoint_store,
                extensions: Extensions::default(),
                stop_sweeper,
                config,
                erasure,
            }),
        }
    }

    /// The kernel's erasure layer.
    pub(crate) fn erasure(&self) -> &Arc<ErasureLayer> {
        &self.inner.erasure
    }

    /// Asks every live actor of every type to drop its in-memory state.
    pub(crate) fn reload_all(&self) {
        for registry in self.inner.registries.values() {
            registry.reload_all();
        }
    }

    /// What the actors share (the stores among it).
    pub(super) fn context(&self) -> &Context {
        &self.inner.ctx
    }

    pub(super) fn registry<A: Aggregate>(&self) -> Result<&Registry<A>, DispatchError<A::Error>> {
        self.inner
            .registries
            .get(&TypeId::of::<A>())
            .and_then(|r| r.as_any().downcast_ref::<Registry<A>>())
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
    ) -> Result<Committed, DispatchError<A::Error>> {
        self.send::<A>(id.as_ref(), command.into(), None).await
    }

    /// Like [`Kernel::dispatch`], with an expected version and the envelope: command id
    /// (idempotency key), correlation and causation ids, tags and metadata.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # pub struct Deposit { pub amount: u64 }
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    /// # pub struct Deposited { pub amount: u64 }
    /// # #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    /// # pub struct BankAccount { balance: u64 }
    /// # #[aggregate(name = "bank_account")]
    /// # impl BankAccount {
    /// #     #[command]
    /// #     fn deposit(&self, c: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited { amount: c.amount }) }
    /// #     #[apply]
    /// #     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let kernel = Kernel::builder().store(MemoryStore::new()).register::<BankAccount>().build()?;
    /// let opts = DispatchOptions::default()
    ///     .command_id("cmd-7")
    ///     .correlation_id("order-42")
    ///     .tag("vip")
    ///     .metadata("ip", "10.0.0.1");
    /// let done = kernel.dispatch_with::<BankAccount>("acc-1", Deposit { amount: 5 }, opts.clone()).await?;
    /// let e = &done.events[0];
    /// assert_eq!(e.command_id(), Some("cmd-7"));
    /// assert_eq!(e.correlation_id(), Some("order-42"));
    /// assert_eq!(e.causation_id(), Some("cmd-7"));
    /// assert_eq!(e.tags(), ["vip".to_string()]);
    /// // A retry with the same command id is answered, not run again.
    /// let again = kernel.dispatch_with::<BankAccount>("acc-1", Deposit { amount: 5 }, opts).await?;
    /// assert_eq!(again, done);
    /// # kernel.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// Besides those of [`Kernel::dispatch`]: [`DispatchError::Store`] with
    /// [`StoreError::InvalidInput`](crate::store::StoreError::InvalidInput) for an empty or
    /// too long id or tag (see [`NewEvent::validate`](crate::store::NewEvent::validate)),
    /// before anything runs.
    pub async fn dispatch_with<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
        command: impl Into<A::Command>,
        options: DispatchOptions,
    ) -> Result<Committed, DispatchError<A::Error>> {
        options.validate()?;
        self.send::<A>(id.as_ref(), command.into(), Some(Box::new(options)))
            .await
    }

    async fn send<A: Aggregate>(
        &self,
        id: &str,
        command: A::Command,
        options: Option<Box<DispatchOptions>>,
    ) -> Result<Committed, DispatchError<A::Error>> {
        let registry = self.registry::<A>()?;
        let span = tracing::debug_span!(
            "command",
            aggregate = A::TYPE,
            id,
            version = tracing::field::Empty
        );
        let result = registry
            .dispatch(&self.inner.ctx, id, command, options)
            .instrument(span.clone())
            .await;
        registry.metrics().command(&result);
        if let Ok(done) = &result {
            span.record("version", done.version);
        }
        result
    }

    /// The current state of aggregate `id` (rehydrated if it is not live).
    pub async fn state<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
    ) -> Result<A, DispatchError<A::Error>> {
        let registry = self.registry::<A>()?;
        registry.state(&self.inner.ctx, id.as_ref()).await
    }

    /// The number of aggregates with a running actor.
    pub fn live_aggregates(&self) -> usize {
        self.inner.ctx.live()
    }

    /// The kernel's figures so far: commands by outcome, batches, passivations, rehydrations
    /// and snapshots per aggregate type, and every projection's status with its lag. The same
    /// figures the metrics of [`crate::metrics`] report, for code without a metrics recorder.
    pub fn stats(&self) -> KernelStats {
        let mut aggregates: Vec<AggregateStats> =
            self.inner.registries.values().map(|r| r.stats()).collect();
        aggregates.sort_by_key(|a| a.aggregate);
        KernelStats {
            live_aggregates: self.live_aggregates(),
            aggregates,
            projections: self.inner.projections.statuses(),
        }
    }

    /// The projection runners of this kernel.
    pub fn projections(&self) -> &Projections {
        &self.inner.projections
    }

    /// The extension of type `T` started on top of this kernel (the process managers' runners),
    /// made with `make` the first time it is asked for; [`Kernel::shutdown`] stops it before
    /// the actors. `make` must not ask for an extension itself.
    pub(crate) fn extension<T: Extension>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        self.inner.extensions.get_or_insert_with(make)
    }

    /// The kernel's default checkpoint store, if it was built with one.
    pub(crate) fn checkpoint_store(&self) -> Option<&Arc<dyn CheckpointStore>> {
        self.inner.checkpoint_store.as_ref()
    }

    /// A handle that does not keep the kernel alive (process manager runners hold one).
    pub(crate) fn downgrade(&self) -> WeakKernel {
        WeakKernel(Arc::downgrade(&self.inner))
    }

    /// The kernel's event store.
    pub fn event_store(&self) -> &Arc<dyn EventStore> {
        &self.inner.ctx.event_store
    }

    /// The kernel's clock (what stamps events; process managers' deadlines fall due by it).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.ctx.clock
    }

    /// Stops every actor and projection runner and waits for them: batches being handled
    /// finish and commit, commands still queued are answered with [`DispatchError::Shutdown`],
    /// and snapshot writes in flight complete. Later dispatches fail with `Shutdown`, and no
    /// actor or runner starts any more.
    ///
    /// When it returns, every actor, runner and snapshot write has dropped its store handles:
    /// once the `Kernel` handles are dropped too, the kernel holds no store (a file-backed store
    /// can be reopened right away). Every runner lease the kernel held is given up by then too
    /// (on PostgreSQL, once the server confirmed): another process, or `es dlq skip`, can take
    /// it at once.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        // What runs on top of the kernel first (process managers): their in-flight commands
        // still commit, and what they handled is checkpointed.
        inner.extensions.shutdown().await;
        inner.ctx.begin_shutdown();
        inner.stop_sweeper.send_replace(true);
        // Actors are asked to stop through their mailboxes, so an actor's hot loop never has
        // to watch a shutdown signal.
        for registry in inner.registries.values() {
            registry.stop_all();
        }
        inner.projections.stop_all().await;
        inner.ctx.wait_idle().await;
    }
}

/// Offers passivation to idle actors, a few times per `passivate_after`, until the kernel is
/// shut down or dropped. Idle actors hold no timer and never wake up on their own. The sweeper
/// holds the registries, never the stores.
async fn sweep(
    registries: Arc<Registries>,
    clock: IdleClock,
    idle: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let every = (idle / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let idle_micros = u64::try_from(idle.as_micros()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // A stop request, or the kernel was dropped.
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let Some(idle_since) = clock.now_micros().checked_sub(idle_micros) else {
            continue;
        };
        for registry in registries.values() {
            registry.sweep(idle_since);
        }
    }
}

/// A [`Kernel`] handle that does not keep it alive.
#[derive(Clone)]
pub(crate) struct WeakKernel(std::sync::Weak<KernelInner>);

impl WeakKernel {
    /// The kernel, unless every strong handle is gone.
    pub(crate) fn upgrade(&self) -> Option<Kernel> {
        self.0.upgrade().map(|inner| Kernel { inner })
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
