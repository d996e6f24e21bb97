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
//! The names (the README has the same table):
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
//! | `es_store_append_seconds` | histogram | `backend` | one `append`, as its caller waits for it (`es-stores`) |
//! | `es_store_group_size` | histogram | `backend` | appends committed together by one group commit (`es-stores`) |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Histogram};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::kernel::DispatchError;
use crate::projection::ProjectionStatus;

/// Counter: commands answered, labels `aggregate` and `outcome`.
pub const COMMANDS: &str = "es_commands_total";
/// Counter: batches re-run after a version conflict, label `aggregate`.
pub const CONFLICT_RERUNS: &str = "es_conflict_reruns_total";
/// Histogram: commands per committed batch, label `aggregate`.
pub const BATCH_SIZE: &str = "es_batch_size";
/// Histogram: seconds per batch from decide to answers, label `aggregate`.
pub const COMMIT_SECONDS: &str = "es_commit_seconds";
/// Gauge: aggregates with a running actor, label `aggregate`.
pub const LIVE_AGGREGATES: &str = "es_live_aggregates";
/// Counter: actors passivated after being idle, label `aggregate`.
pub const PASSIVATIONS: &str = "es_passivations_total";
/// Counter: states rehydrated from the store, label `aggregate`.
pub const REHYDRATIONS: &str = "es_rehydrations_total";
/// Counter: events applied while rehydrating, label `aggregate`.
pub const EVENTS_REPLAYED: &str = "es_events_replayed_total";
/// Counter: rehydrations that started from a snapshot, label `aggregate`.
pub const SNAPSHOT_HITS: &str = "es_snapshot_hits_total";
/// Counter: rehydrations that found no snapshot in the snapshot store, label `aggregate`.
pub const SNAPSHOT_MISSES: &str = "es_snapshot_misses_total";
/// Counter: snapshots ignored because they no longer decode, label `aggregate`.
pub const SNAPSHOTS_DISCARDED: &str = "es_snapshots_discarded_total";
/// Gauge: events in the log after a runner's position, label `projection`.
pub const PROJECTION_LAG_EVENTS: &str = "es_projection_lag_events";
/// Gauge: seconds since the oldest event a runner has not processed was recorded (0 when
/// caught up), label `projection`.
pub const PROJECTION_LAG_SECONDS: &str = "es_projection_lag_seconds";
/// Counter: events a projection handled, label `projection`.
pub const PROJECTION_EVENTS_HANDLED: &str = "es_projection_events_handled_total";
/// Counter: events a projection skipped, labels `projection` and `reason` (`filter`, `error`).
pub const PROJECTION_EVENTS_SKIPPED: &str = "es_projection_events_skipped_total";
/// Counter: runners started again under a name whose runner had stopped, label `projection`.
pub const PROJECTION_RESTARTS: &str = "es_projection_restarts_total";

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
];

/// The figures of a kernel, for code without a metrics recorder: [`Kernel::stats`](crate::Kernel::stats).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KernelStats {
    /// Aggregates with a running actor, of every type.
    pub live_aggregates: usize,
    /// One entry per registered aggregate type, by name.
    pub aggregates: Vec<AggregateStats>,
    /// The status (with lag) of every projection runner started on the kernel, by name.
    pub projections: Vec<ProjectionStatus>,
}

/// The figures of one aggregate type since the kernel was built.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AggregateStats {
    /// The aggregate type (`Aggregate::TYPE`).
    pub aggregate: &'static str,
    /// Commands answered, by outcome.
    pub commands: CommandCounts,
    /// Batches re-run after a version conflict.
    pub conflict_reruns: u64,
    /// Batches of commands taken from mailboxes.
    pub batches: u64,
    /// Commands in those batches (`batched_commands / batches` is the mean batch size).
    pub batched_commands: u64,
    /// Time spent in the batches that committed, from decide to answers.
    pub commit_time: Duration,
    /// Aggregates of this type with a running actor.
    pub live: u64,
    /// Actors passivated after being idle.
    pub passivations: u64,
    /// States rehydrated from the store.
    pub rehydrations: u64,
    /// Events applied while rehydrating.
    pub events_replayed: u64,
    /// Rehydrations that started from a snapshot.
    pub snapshot_hits: u64,
    /// Rehydrations that found no snapshot in the snapshot store.
    pub snapshot_misses: u64,
    /// Snapshots ignored because they no longer decode.
    pub snapshots_discarded: u64,
}

/// Commands answered, by outcome (the `outcome` label of [`COMMANDS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandCounts {
    /// Committed (`Ok`), including commands that produced no event.
    pub ok: u64,
    /// Rejected by the aggregate.
    pub rejected: u64,
    /// Version conflicts reported to the caller.
    pub conflict: u64,
    /// Store errors reported to the caller.
    pub store_error: u64,
    /// The aggregate panicked.
    pub panicked: u64,
    /// Refused because the kernel is shutting down.
    pub shutdown: u64,
}

/// The `outcome` label values of [`COMMANDS`], in [`CommandCounts`] order.
const OUTCOMES: [&str; 6] = [
    "ok",
    "rejected",
    "conflict",
    "store_error",
    "panicked",
    "shutdown",
];

/// Slots of a [`Striped`] counter.
const STRIPES: usize = 8;

/// One slot of a striped counter, on its own cache line.
#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A counter that threads add to without sharing a cache line: each thread adds to its own
/// slot, and a read sums them. Wrapping, so a gauge can add and subtract.
#[derive(Default)]
pub(crate) struct Striped([Slot; STRIPES]);

/// This thread's slot of every [`Striped`] counter.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.0[stripe()].0.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(slot.0.load(Ordering::Relaxed))
        })
    }
}

/// A counter reported both to the recorder and to [`KernelStats`].
pub(crate) struct Count {
    handle: Counter,
    local: Striped,
}

impl Count {
    fn new(handle: Counter) -> Self {
        Self {
            handle,
            local: Striped::default(),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        if n > 0 {
            self.handle.increment(n);
            self.local.add(n);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.local.get()
    }
}

/// The metrics of one aggregate type: handles taken once, when the type is registered.
pub(crate) struct AggregateMetrics {
    aggregate: &'static str,
    commands: [Count; 6],
    pub(crate) conflict_reruns: Count,
    batch_size: Histogram,
    commit_seconds: Histogram,
    batches: Striped,
    batched_commands: Striped,
    commit_nanos: Striped,
    live_gauge: Gauge,
    live: Striped,
    pub(crate) passivations: Count,
    pub(crate) rehydrations: Count,
    pub(crate) events_replayed: Count,
    pub(crate) snapshot_hits: Count,
    pub(crate) snapshot_misses: Count,
    pub(crate) snapshots_discarded: Count,
}

impl AggregateMetrics {
    /// Registers the metrics of `aggregate` with the recorder in force.
    pub(crate) fn new(aggregate: &'static str) -> Self {
        let counter =
            |name: &'static str| Count::new(metrics::counter!(name, "aggregate" => aggregate));
        Self {
            aggregate,
            commands: OUTCOMES.map(|outcome| {
                Count::new(metrics::counter!(
                    COMMANDS,
                    "aggregate" => aggregate,
                    "outcome" => outcome
                ))
            }),
            conflict_reruns: counter(CONFLICT_RERUNS),
            batch_size: metrics::histogram!(BATCH_SIZE, "aggregate" => aggregate),
            commit_seconds: metrics::histogram!(COMMIT_SECONDS, "aggregate" => aggregate),
            batches: Striped::default(),
            batched_commands: Striped::default(),
            commit_nanos: Striped::default(),
            live_gauge: metrics::gauge!(LIVE_AGGREGATES, "aggregate" => aggregate),
            live: Striped::default(),
            passivations: counter(PASSIVATIONS),
            rehydrations: counter(REHYDRATIONS),
            events_replayed: counter(EVENTS_REPLAYED),
            snapshot_hits: counter(SNAPSHOT_HITS),
            snapshot_misses: counter(SNAPSHOT_MISSES),
            snapshots_discarded: counter(SNAPSHOTS_DISCARDED),
        }
    }

    /// Counts a command's answer under its outcome.
    pub(crate) fn command<E>(&self, result: &Result<impl Sized, DispatchError<E>>) {
        let index = match result {
            Ok(_) => 0,
            Err(DispatchError::Rejected(_)) => 1,
            Err(DispatchError::Conflict { .. }) => 2,
            Err(DispatchError::Store(_)) => 3,
            Err(DispatchError::Panicked(_)) => 4,
            Err(DispatchError::Shutdown) => 5,
            // Never reaches a registered type's metrics.
            Err(DispatchError::NotRegistered) => return,
        };
        self.commands[index].add(1);
    }

    /// Records a batch of `commands` taken from the mailbox.
    pub(crate) fn batch_started(&self, commands: usize) {
        self.batch_size.record(commands as f64);
        self.batches.add(1);
        self.batched_commands.add(commands as u64);
    }

    /// Records the time of a batch that committed, from `started` until now (just before its
    /// commands are answered, so that a caller sees it).
    pub(crate) fn batch_done(&self, started: Instant) {
        let elapsed = started.elapsed();
        self.commit_seconds.record(elapsed);
        self.commit_nanos
            .add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// An actor of this type started.
    pub(crate) fn actor_started(&self) {
        self.live_gauge.increment(1.0);
        self.live.add(1);
    }

    /// An actor of this type stopped.
    pub(crate) fn actor_stopped(&self) {
        self.live_gauge.decrement(1.0);
        self.live.sub(1);
    }

    /// The figures so far.
    pub(crate) fn stats(&self) -> AggregateStats {
        let [ok, rejected, conflict, store_error, panicked, shutdown] =
            self.commands.each_ref().map(Count::get);
        AggregateStats {
            aggregate: self.aggregate,
            commands: CommandCounts {
                ok,
                rejected,
                conflict,
                store_error,
                panicked,
                shutdown,
            },
            conflict_reruns: self.conflict_reruns.get(),
            batches: self.batches.get(),
            batched_commands: self.batched_commands.get(),
            commit_time: Duration::from_nanos(self.commit_nanos.get()),
            // The slots are read one by one: a stop may be seen without its start.
            live: u64::try_from(self.live.get() as i64).unwrap_or(0),
            passivations: self.passivations.get(),
            rehydrations: self.rehydrations.get(),
            events_replayed: self.events_replayed.get(),
            snapshot_hits: self.snapshot_hits.get(),
            snapshot_misses: self.snapshot_misses.get(),
            snapshots_discarded: self.snapshots_discarded.get(),
        }
    }
}

/// The metrics of one projection, and what its lag is computed from. Taken when its runner is
/// first started on a kernel, and kept across restarts.
pub(crate) struct ProjectionMetrics {
    lag_events: Gauge,
    lag_seconds: Gauge,
    pub(crate) handled: Count,
    pub(crate) filtered: Count,
    pub(crate) error_skipped: Counter,
    pub(crate) restarts: Count,
    /// The highest readable position of the log (the store's `subscribe`).
    head: watch::Receiver<u64>,
    /// The oldest event the runner knows it has not processed: its position and timestamp.
    pending: Mutex<Option<(u64, DateTime<Utc>)>>,
    /// The kernel's clock (which stamps the events).
    clock: Arc<dyn Clock>,
}

/// A runner's lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lag {
    pub(crate) events: u64,
    pub(crate) time: Duration,
}

impl ProjectionMetrics {
    /// Registers the metrics of projection `name` with the recorder in force.
    pub(crate) fn new(
        name: &'static str,
        head: watch::Receiver<u64>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let counter = |metric: &'static str| metrics::counter!(metric, "projection" => name);
        Self {
            lag_events: metrics::gauge!(PROJECTION_LAG_EVENTS, "projection" => name),
            lag_seconds: metrics::gauge!(PROJECTION_LAG_SECONDS, "projection" => name),
            handled: Count::new(counter(PROJECTION_EVENTS_HANDLED)),
            filtered: Count::new(metrics::counter!(
                PROJECTION_EVENTS_SKIPPED,
                "projection" => name,
                "reason" => "filter"
            )),
            error_skipped: metrics::counter!(
                PROJECTION_EVENTS_SKIPPED,
                "projection" => name,
                "reason" => "error"
            ),
            restarts: Count::new(counter(PROJECTION_RESTARTS)),
            head,
            pending: Mutex::new(None),
            clock,
        }
    }

    /// Notes the oldest event not yet processed that the runner has seen (the first one of
    /// the page it is about to process).
    pub(crate) fn note_pending(&self, position: u64, timestamp: DateTime<Utc>) {
        *self.pending.lock() = Some((position, timestamp));
    }

    /// Whether the lag in time is unknown: the runner is behind, and the oldest event it
    /// has not processed was not seen yet.
    pub(crate) fn needs_pending(&self, processed: u64) -> bool {
        *self.head.borrow() > processed
            && self
                .pending
                .lock()
                .is_none_or(|(position, _)| position <= processed)
    }

    /// The lag of a runner at `processed`, also set on the gauges.
    ///
    /// In events: the log's head minus `processed`. In time (by the kernel's clock, which
    /// stamped the events): since the timestamp of the oldest event after `processed` the
    /// runner has seen; zero when it is caught up (an idle log is
    /// not lag), and zero while that event has not been seen yet (for at most a moment for a
    /// running runner; the kernel's lag monitor reads it for a stopped one within a second).
    pub(crate) fn lag(&self, processed: u64) -> Lag {
        let head = *self.head.borrow();
        let events = head.saturating_sub(processed);
        let time = match *self.pending.lock() {
            Some((position, at)) if events > 0 && position > processed => {
                (self.clock.now() - at).to_std().unwrap_or(Duration::ZERO)
            }
            _ => Duration::ZERO,
        };
        self.lag_events.set(events as f64);
        self.lag_seconds.set(time.as_secs_f64());
        Lag { events, time }
    }
}

/// Shared handles of a projection's metrics.
pub(crate) type ProjectionMetricsRef = Arc<ProjectionMetrics>;
