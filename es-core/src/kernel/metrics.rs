//! The kernel's metric handles: the names it registers per aggregate type, the handles each
//! type takes when the kernel is built, and the same figures without a recorder
//! ([`KernelStats`], from [`Kernel::stats`](super::Kernel::stats)). `crate::metrics` re-exports
//! the public names and documents them.

use std::time::{Duration, Instant};

use metrics::{Gauge, Histogram};

use crate::counter::{Count, Striped};
use crate::projection::ProjectionStatus;

use super::DispatchError;

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
            // A deleted stream refuses the command: counted with the rejections.
            Err(DispatchError::Rejected(_) | DispatchError::StreamDeleted { .. }) => 1,
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
