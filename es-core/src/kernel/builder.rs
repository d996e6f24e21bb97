//! [`KernelBuilder`]: stores, tuning and the registered aggregate types.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::clock::{Clock, SystemClock};
use crate::erasure::stores::{SealedEvents, SealedSnapshots};
use crate::erasure::{DEFAULT_KEY_CACHE_TTL, ErasureLayer};
use crate::event::EventSet;
use crate::projection::Projections;
use crate::store::{CheckpointStore, EventStore, KeyStore, SnapshotStore};
use crate::tracker::TaskTracker;

use super::context::{Config, Context};
use super::handle::Kernel;
use super::registry::{AnyRegistry, Registry};

/// Makes a registry for one aggregate type.
type NewRegistry = fn() -> Arc<dyn AnyRegistry>;

/// A new registry for `A`, seen without its type.
fn new_registry<A: Aggregate>() -> Arc<dyn AnyRegistry> {
    Arc::new(Registry::<A>::new())
}

impl Kernel {
    /// A builder for a kernel.
    pub fn builder() -> KernelBuilder {
        KernelBuilder::default()
    }
}

/// Builds a [`Kernel`]: `Kernel::builder().store(s).register::<A>().build()`.
#[must_use]
#[derive(Default)]
pub struct KernelBuilder {
    event_store: Option<Arc<dyn EventStore>>,
    snapshot_store: Option<Arc<dyn SnapshotStore>>,
    checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// The key store for PII fields (default: the event store's own).
    key_store: Option<Arc<dyn KeyStore>>,
    /// How long keys are cached (default [`DEFAULT_KEY_CACHE_TTL`]).
    key_cache_ttl: Option<Duration>,
    config: Config,
    clock: Option<Arc<dyn Clock>>,
    /// The registered types, each with how to make its registry (at `build`, so that its
    /// metric handles are taken with the recorder in force then).
    registries: HashMap<TypeId, (&'static str, NewRegistry)>,
    duplicate: Option<&'static str>,
    /// The first aggregate whose event set has an ambiguous stored name, with the message.
    ambiguous_event: Option<(&'static str, String)>,
    /// Each stored event name (and alias) of the registered aggregates: the Rust type it
    /// decodes as, and the aggregate that registered it first.
    stored_names: HashMap<&'static str, (TypeId, &'static str, &'static str)>,
    /// The first stored name found standing for two Rust types.
    name_clash: Option<BuildError>,
}

/// Why a kernel could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No event store was given (`store(..)` or `event_store(..)`).
    #[error("no event store: call `.store(..)` or `.event_store(..)` on the kernel builder")]
    MissingEventStore,
    /// `build` was called outside a tokio runtime.
    #[error("the kernel needs a tokio runtime: call `build()` from within one")]
    NoRuntime,
    /// One aggregate type name was registered twice.
    #[error("aggregate type `{0}` is registered twice")]
    DuplicateAggregate(&'static str),
    /// A setting is out of range.
    #[error("invalid kernel setting: {0}")]
    InvalidSetting(&'static str),
    /// One stored event name (or alias) stands for two different Rust types in the registered
    /// aggregates (for example a bank's `Deposited` and a wallet's `Deposited`, both stored as
    /// `"Deposited"`): events of one would be decoded as the other. One type shared by several
    /// aggregates is fine.
    #[error(
        "the stored event name `{name}` stands for two Rust types: `{first}` (aggregate \
         `{first_aggregate}`) and `{second}` (aggregate `{second_aggregate}`), so events of one \
         would be decoded as the other; give one of them another `#[event(name = \"...\")]`, \
         for example prefixed by its aggregate (`\"{second_aggregate}.{name}\"`)"
    )]
    EventNameClash {
        /// The stored name.
        name: &'static str,
        /// The Rust type registered first under it.
        first: &'static str,
        /// The aggregate that registered `first`.
        first_aggregate: &'static str,
        /// The other Rust type.
        second: &'static str,
        /// The aggregate that registered `second`.
        second_aggregate: &'static str,
    },
    /// An aggregate's events have an alias equal to another of its event names (or two events
    /// share an alias), so stored events under it could not be told apart.
    #[error("aggregate `{aggregate}`: {message}")]
    AmbiguousEventName {
        /// The aggregate type.
        aggregate: &'static str,
        /// What clashes and what to remove.
        message: String,
    },
}

impl KernelBuilder {
    /// Uses one store for events, snapshots and checkpoints.
    pub fn store<S>(self, store: S) -> Self
    where
        S: EventStore + SnapshotStore + CheckpointStore + Clone,
    {
        self.event_store(store.clone())
            .snapshot_store(store.clone())
            .checkpoint_store(store)
    }

    /// Sets the event store.
    ///
    /// Alone, it gives a kernel with no snapshots and no projection checkpoint store: its
    /// projection runners are refused at start unless their options give a checkpoint store or
    /// say [`in_memory_checkpoints`](crate::projection::ProjectionOptions::in_memory_checkpoints).
    /// Add [`snapshot_store`](Self::snapshot_store) and
    /// [`checkpoint_store`](Self::checkpoint_store), or use [`store`](Self::store).
    pub fn event_store(mut self, store: impl EventStore) -> Self {
        self.event_store = Some(Arc::new(store));
        self
    }

    /// Sets the snapshot store (without one, no snapshots are read or written).
    pub fn snapshot_store(mut self, store: impl SnapshotStore) -> Self {
        self.snapshot_store = Some(Arc::new(store));
        self
    }

    /// Sets the default checkpoint store of projections.
    ///
    /// A kernel built with [`event_store`](Self::event_store) alone has none: its projection
    /// runners are refused at start unless given a store in
    /// [`ProjectionOptions`](crate::projection::ProjectionOptions) or run with
    /// [`in_memory_checkpoints`](crate::projection::ProjectionOptions::in_memory_checkpoints)
    /// (their positions kept in memory only, so after a restart they read the whole log again
    /// from position 1).
    pub fn checkpoint_store(mut self, store: impl CheckpointStore) -> Self {
        self.checkpoint_store = Some(Arc::new(store));
        self
    }

    /// Sets the key store that holds the subject keys of `#[pii]` fields (see
    /// [`erasure`](crate::erasure)). By default the kernel uses its event store's own
    /// ([`EventStore::key_store`]), which every backend of this workspace has.
    pub fn key_store(mut self, keys: impl KeyStore) -> Self {
        self.key_store = Some(Arc::new(keys));
        self
    }

    /// How long the kernel keeps a subject key it has read (default 30 s; zero: no cache
    /// across reads). A `forget` through this kernel takes effect at once; one made by another
    /// process sharing the store (another node on PostgreSQL, `es forget`) is seen within this
    /// time, during which this kernel may still decrypt the subject's fields.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use std::time::Duration;
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let kernel = Kernel::builder()
    ///     .store(MemoryStore::new())
    ///     .key_cache_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// # kernel.shutdown().await;
    /// # Ok::<(), es_core::kernel::BuildError>(())
    /// # }).unwrap();
    /// ```
    pub fn key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.key_cache_ttl = Some(ttl);
        self
    }

    /// Writes a snapshot after each commit that crosses a multiple of `events` (0, the default:
    /// never).
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.config.actor.snapshot_every = events;
        self
    }

    /// How many snapshots to keep per stream (default 2).
    pub fn snapshots_kept(mut self, keep: usize) -> Self {
        self.config.actor.snapshots_kept = keep;
        self
    }

    /// Stops an aggregate's actor after this long without a message (default 5 s).
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.config.passivate_after = idle;
        self
    }

    /// Commands that may wait in one aggregate's mailbox before dispatchers wait (default 1024).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.config.actor.mailbox = capacity;
        self
    }

    /// The most queued commands one aggregate handles in one commit (default 512).
    pub fn max_batch(mut self, commands: usize) -> Self {
        self.config.actor.max_batch = commands;
        self
    }

    /// How often a command is re-run after a version conflict before `Conflict` (default 5).
    pub fn conflict_retries(mut self, retries: u32) -> Self {
        self.config.actor.conflict_retries = retries;
        self
    }

    /// How often a batch is retried, with backoff, when the store reports it is unavailable
    /// (the write surely did not happen) before the error reaches the callers (default 3).
    pub fn store_retries(mut self, retries: u32) -> Self {
        self.config.actor.store_retries = retries;
        self
    }

    /// Registers an aggregate type.
    pub fn register<A: Aggregate>(mut self) -> Self {
        if self
            .registries
            .iter()
            .any(|(id, (name, _))| *name == A::TYPE && *id != TypeId::of::<A>())
        {
            self.duplicate = Some(A::TYPE);
        }
        if self.ambiguous_event.is_none() {
            self.ambiguous_event =
                crate::event::ambiguous_name::<A::Event>().map(|message| (A::TYPE, message));
        }
        self.record_stored_names::<A>();
        self.registries
            .insert(TypeId::of::<A>(), (A::TYPE, new_registry::<A>));
        self
    }

    /// Records the stored names and aliases of `A`'s events, noting the first one that
    /// another registered aggregate uses for a different Rust type.
    fn record_stored_names<A: Aggregate>(&mut self) {
        let names = <A::Event as EventSet>::NAMES;
        let aliases = <A::Event as EventSet>::NAME_ALIASES;
        for (i, (type_id, rust)) in <A::Event as EventSet>::event_types()
            .into_iter()
            .enumerate()
        {
            let Some(name) = names.get(i) else { break };
            let older = aliases.get(i).copied().unwrap_or(&[]);
            for stored in std::iter::once(*name).chain(older.iter().copied()) {
                match self.stored_names.get(stored) {
                    Some(&(other, first, first_aggregate)) if other != type_id => {
                        if self.name_clash.is_none() {
                            self.name_clash = Some(BuildError::EventNameClash {
                                name: stored,
                                first,
                                first_aggregate,
                                second: rust,
                                second_aggregate: A::TYPE,
                            });
                        }
                    }
                    Some(_) => {}
                    None => {
                        self.stored_names.insert(stored, (type_id, rust, A::TYPE));
                    }
                }
            }
        }
    }

    /// The clock that stamps every event and snapshot (default: [`SystemClock`]). A
    /// [`ManualClock`](crate::clock::ManualClock) makes timestamps deterministic in tests:
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use es_core::clock::ManualClock;
    /// use es_core::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # pub struct Open;
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    /// # pub struct Opened;
    /// # #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    /// # pub struct Account;
    /// # #[aggregate(name = "account")]
    /// # impl Account {
    /// #     #[command]
    /// #     fn open(&self, _: Open) -> Result<Opened, std::convert::Infallible> { Ok(Opened) }
    /// #     #[apply]
    /// #     fn opened(&mut self, _: &Opened) {}
    /// # }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    /// let clock = ManualClock::new(start);
    /// let kernel = Kernel::builder()
    ///     .store(MemoryStore::new())
    ///     .clock(clock.clone())
    ///     .register::<Account>()
    ///     .build()?;
    /// let done = kernel.dispatch::<Account>("a-1", Open).await?;
    /// assert_eq!(done.events[0].timestamp, start);
    /// clock.advance(std::time::Duration::from_secs(60));
    /// let done = kernel.dispatch::<Account>("a-1", Open).await?;
    /// assert_eq!(done.events[0].timestamp, start + chrono::Duration::seconds(60));
    /// # kernel.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many of an aggregate's most recent commands are remembered by id (default 1,000;
    /// 0 turns idempotency off). A command whose [`command_id`] the aggregate committed within
    /// that many commands is not run again: the caller gets the first answer (same version,
    /// same events, same positions). This holds after passivation, a kernel restart and on a
    /// freshly opened durable store, because the window is rebuilt from the stream. A rejected
    /// command records nothing, so its id can run again.
    ///
    /// Aggregates that never see an explicit command id pay nothing for this; one that does
    /// keeps the ids of its last `n` commands in memory while it is live.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # use es_core::MemoryStore;
    /// # fn build() -> Result<Kernel, es_core::kernel::BuildError> {
    /// let kernel = Kernel::builder()
    ///     .store(MemoryStore::new())
    ///     .dedup_window(10_000) // remember each aggregate's last 10,000 command ids
    ///     .build()?;
    /// # Ok(kernel)
    /// # }
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async { build().map(|_| ()) }).unwrap();
    /// ```
    ///
    /// [`command_id`]: super::DispatchOptions::command_id
    pub fn dedup_window(mut self, n: usize) -> Self {
        self.config.actor.dedup_window = n;
        self
    }

    /// Builds the kernel. Must be called within a tokio runtime, whose handle the kernel keeps
    /// to spawn its actors.
    pub fn build(self) -> Result<Kernel, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let event_store = self.event_store.ok_or(BuildError::MissingEventStore)?;
        if let Some(name) = self.duplicate {
            return Err(BuildError::DuplicateAggregate(name));
        }
        if let Some((aggregate, message)) = self.ambiguous_event {
            return Err(BuildError::AmbiguousEventName { aggregate, message });
        }
        if let Some(clash) = self.name_clash {
            return Err(clash);
        }
        if self.config.actor.mailbox == 0 {
            return Err(BuildError::InvalidSetting(
                "mailbox_capacity must be at least 1",
            ));
        }
        if self.config.actor.max_batch == 0 {
            return Err(BuildError::InvalidSetting("max_batch must be at least 1"));
        }
        if self.config.passivate_after.is_zero() {
            return Err(BuildError::InvalidSetting(
                "passivate_after must be longer than 0",
            ));
        }
        let registries = self
            .registries
            .into_iter()
            .map(|(id, (_, make))| (id, make()))
            .collect();
        let keys = self.key_store.or_else(|| event_store.key_store());
        let erasure = Arc::new(ErasureLayer::with_cache_ttl(
            keys,
            self.key_cache_ttl.unwrap_or(DEFAULT_KEY_CACHE_TTL),
        ));
        let event_store: Arc<dyn EventStore> = Arc::new(SealedEvents {
            inner: event_store,
            layer: erasure.clone(),
        });
        let snapshot_store = self.snapshot_store.map(|inner| {
            Arc::new(SealedSnapshots {
                inner,
                layer: erasure.clone(),
            }) as Arc<dyn SnapshotStore>
        });
        let tasks = TaskTracker::default();
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let projections = Projections::new(
            runtime.clone(),
            event_store.clone(),
            self.checkpoint_store.clone(),
            tasks.clone(),
            clock.clone(),
        );
        let ctx = Context::new(
            runtime,
            event_store,
            snapshot_store,
            self.config.actor.clone(),
            clock,
            tasks,
        );
        Ok(Kernel::new(
            ctx,
            registries,
            projections,
            self.checkpoint_store,
            self.config,
            erasure,
        ))
    }
}
