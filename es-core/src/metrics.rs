//! Metrics: what the kernel, its projections and the stores report through the [`metrics`]
//! facade, and the same figures without a recorder ([`Kernel::stats`](crate::Kernel::stats)).
//!
//! The library installs no recorder and no exporter: an application installs the one it likes
//! (`metrics-exporter-prometheus`, for instance) and every name below appears there. Without a
//! recorder each metric is a no-op handle, and [`Kernel::stats`](crate::Kernel::stats) still
//! reports the counts.
//!
//! **When handles are taken.** A kernel registers its metrics once, with the recorder in force
//! when the kernel is built (`KernelBuilder::build`); a projection runner when it
//! is started; a store (in `es-stores`) when it is opened. Nothing is looked up per command, so
//! the hot path pays an atomic add at most. Install the recorder first. (A test can use
//! [`metrics::with_local_recorder`] around the builder, or hold
//! [`metrics::set_default_local_recorder`]'s guard: updates made later on other threads still
//! reach that recorder, through the handles.)
//!
//! ```
//! use es_core::prelude::*;
//! # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Event)]
//! # pub struct Deposited { pub amount: u64 }
//! # #[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
//! # pub struct Account { pub balance: u64 }
//! # #[aggregate(name = "account")]
//! # impl Account {
//! #     #[command]
//! #     fn deposit(&self, cmd: Deposited) -> Result<Deposited, std::convert::Infallible> { Ok(cmd) }
//! #     #[apply]
//! #     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kernel = Kernel::builder().store(MemoryStore::new()).register::<Account>().build()?;
//! kernel.dispatch::<Account>("a-1", Deposited { amount: 5 }).await?;
//! let stats = kernel.stats();
//! assert_eq!(stats.aggregates[0].aggregate, "account");
//! assert_eq!(stats.aggregates[0].commands.ok, 1);
//! assert_eq!(stats.live_aggregates, 1);
//! # Ok(())
//! # }
//! ```
//!
//! The names (docs/metrics.md has the same table):
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`COMMANDS`] | counter | `aggregate`, `outcome` | commands answered, by outcome: `ok`, `rejected`, `conflict`, `store_error`, `panicked`, `shutdown` |
//! | [`CONFLICT_RERUNS`] | counter | `aggregate` | batches re-run after a version conflict |
//! | [`BATCH_SIZE`] | histogram | `aggregate` | commands decided and committed together |
//! | [`COMMIT_SECONDS`] | histogram | `aggregate` | one batch that committed, from decide to answers (a rehydration and re-runs included) |
//! | [`LIVE_AGGREGATES`] | gauge | `aggregate` | aggregates with a running actor |
//! | [`PASSIVATIONS`] | counter | `aggregate` | actors stopped after being idle |
//! | [`REHYDRATIONS`] | counter | `aggregate` | states loaded from the store |
//! | [`EVENTS_REPLAYED`] | counter | `aggregate` | events applied while rehydrating |
//! | [`SNAPSHOT_HITS`] | counter | `aggregate` | rehydrations that started from a snapshot |
//! | [`SNAPSHOT_MISSES`] | counter | `aggregate` | rehydrations with a snapshot store but no snapshot |
//! | [`SNAPSHOTS_DISCARDED`] | counter | `aggregate` | snapshots that no longer decode, ignored |
//! | [`PROJECTION_LAG_EVENTS`] | gauge | `projection` | events in the log after the runner's position |
//! | [`PROJECTION_LAG_SECONDS`] | gauge | `projection` | age of the oldest event not yet processed (0 when caught up) |
//! | [`PROJECTION_EVENTS_HANDLED`] | counter | `projection` | events handled |
//! | [`PROJECTION_EVENTS_SKIPPED`] | counter | `projection`, `reason` | events skipped: `filter` (not accepted, never decoded), `error` (`ErrorPolicy::Skip`) |
//! | [`PROJECTION_RESTARTS`] | counter | `projection` | runners started again under a name whose runner had stopped |
//! | [`DEAD_LETTERS`] | gauge | `projection` | events parked in the projection's dead-letter queue (`ErrorPolicy::Park`) |
//! | `es_store_append_seconds` | histogram | `backend` | one `append`, as its caller waits for it (`es-stores`) |
//! | `es_store_group_size` | histogram | `backend` | appends committed together by one group commit (`es-stores`) |
//!
//! Each module owns its handles and registers them itself (the kernel per aggregate type, a
//! projection runner per projection, a process manager per manager: its names are
//! [`crate::process::EVENTS_HANDLED`] and its siblings); this module gathers the kernel's and
//! the projections' names and figures in one place.

pub use crate::kernel::metrics::{
    AggregateStats, BATCH_SIZE, COMMANDS, COMMIT_SECONDS, CONFLICT_RERUNS, CommandCounts,
    EVENTS_REPLAYED, KernelStats, LIVE_AGGREGATES, PASSIVATIONS, REHYDRATIONS, SNAPSHOT_HITS,
    SNAPSHOT_MISSES, SNAPSHOTS_DISCARDED,
};
pub use crate::projection::metrics::{
    DEAD_LETTERS, PROJECTION_EVENTS_HANDLED, PROJECTION_EVENTS_SKIPPED, PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS, PROJECTION_RESTARTS,
};

/// Every metric name `es-core` registers (the stores add theirs, see the module docs).
pub const NAMES: &[&str] = &[
    COMMANDS,
    CONFLICT_RERUNS,
    BATCH_SIZE,
    COMMIT_SECONDS,
    LIVE_AGGREGATES,
    PASSIVATIONS,
    REHYDRATIONS,
    EVENTS_REPLAYED,
    SNAPSHOT_HITS,
    SNAPSHOT_MISSES,
    SNAPSHOTS_DISCARDED,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    PROJECTION_EVENTS_HANDLED,
    PROJECTION_EVENTS_SKIPPED,
    PROJECTION_RESTARTS,
    DEAD_LETTERS,
];
