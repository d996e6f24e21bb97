//! W5 with a slow handler (`--partitions N`): a projection whose handler waits 100 µs per
//! event, as one that writes each event to another system would, run in one partition and in
//! `N`; the partitions wait at the same time, so `N` of them handle about `N` times as many
//! events per second.
//!
//! The wait models I/O, not work: it uses no CPU. A projection handler is synchronous, so it
//! cannot await a timer, and tokio's timers are 1 ms coarse anyway. Each partition's state
//! keeps the waiting it owes (100 µs per event) and pays it in one `std::thread::sleep` once it
//! reaches [`PAY_EVERY`], inside `tokio::task::block_in_place` so the sleeping partition does
//! not hold up the runtime's other tasks (the other partitions). Batching the sleeps keeps the
//! scheduler's wake-up latency (tens of µs per sleep) out of the model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::EventSet;
use es_core::Store;
use es_core::prelude::*;
use es_core::projection::{Partitioning, ProjectionError};
use es_examples::bank::Withdrawn;
use serde_json::json;

use crate::error::BenchError;
use crate::report::{RunResult, human, rate};

/// The simulated I/O latency of one event.
pub const WAIT_PER_EVENT: Duration = Duration::from_micros(100);

/// Events each partition examines per page (a tenth of them are withdrawals), and so between
/// two checkpoint saves: large enough that the saves (an fsync on LMDB) do not weigh on the
/// handler's rate.
const READ_BATCH: usize = 10_000;

/// How much owed waiting a partition pays at once.
const PAY_EVERY: Duration = Duration::from_millis(2);

/// Withdrawals (10% of the W5 log), each handled with [`WAIT_PER_EVENT`] of simulated I/O;
/// the state is kept per stream, so it can be partitioned. `SPLIT` names the partitioned run
/// apart from the one-partition run, so that each keeps its own checkpoints.
#[derive(Debug, Default, Clone)]
pub struct SlowIo<const SPLIT: bool> {
    /// Withdrawals handled.
    pub handled: u64,
    /// Simulated I/O not waited yet.
    owed: Duration,
}

impl<const SPLIT: bool> Projection for SlowIo<SPLIT> {
    const NAME: &'static str = if SPLIT {
        "bench_slow_io_partitioned"
    } else {
        "bench_slow_io"
    };
    const PARTITIONING: Partitioning = Partitioning::ByStream;

    fn accepts(event_type: &str) -> bool {
        <Withdrawn as EventSet>::contains(event_type)
    }

    fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
        self.handled += 1;
        self.owed += WAIT_PER_EVENT;
        if self.owed >= PAY_EVERY {
            let owed = std::mem::take(&mut self.owed);
            tokio::task::block_in_place(|| std::thread::sleep(owed));
        }
        Ok(())
    }
}

impl<const SPLIT: bool> SlowIo<SPLIT> {
    /// Pays what is still owed (the last events of a run).
    fn settle(&mut self) {
        let owed = std::mem::take(&mut self.owed);
        if !owed.is_zero() {
            tokio::task::block_in_place(|| std::thread::sleep(owed));
        }
    }
}

/// One run of [`SlowIo`] in `partitions` partitions over the log of `store`, from the start
/// to `head`: the events handled and the time taken.
async fn run<const SPLIT: bool>(
    store: &Arc<dyn Store>,
    partitions: u32,
    head: u64,
) -> Result<(u64, Duration), BenchError> {
    let kernel = super::bank_kernel(store, |b| b)?;
    let options = ProjectionOptions::default()
        .partitions(partitions)
        .batch_size(READ_BATCH)
        .start_position(1);
    let start = Instant::now();
    let handle = kernel.projections().start::<SlowIo<SPLIT>>(options).await?;
    handle.wait_for(head).await?;
    let mut handled = 0;
    for mut state in handle.partition_states().await {
        state.settle();
        handled += state.handled;
    }
    let elapsed = start.elapsed();
    kernel.shutdown().await;
    Ok((handled, elapsed))
}

/// Runs [`SlowIo`] in one partition, then in `partitions`, over the W5 log (which holds
/// `withdrawals` withdrawals), and records both rates.
pub async fn slow_io(
    store: &Arc<dyn Store>,
    partitions: u32,
    withdrawals: u64,
    r: &mut RunResult,
) -> Result<(), BenchError> {
    let head = store.head_position().await?;
    let (one, one_time) = run::<false>(store, 1, head).await?;
    let (many, many_time) = run::<true>(store, partitions, head).await?;
    r.check(one == withdrawals && many == withdrawals, || {
        format!(
            "W5 slow handler: handled {one} (1 partition) and {many} ({partitions} \
             partitions) withdrawals, expected {withdrawals}"
        )
    });
    let one_rate = rate(one, one_time);
    let many_rate = rate(many, many_time);
    r.set(
        "slow_io",
        json!({
            "wait_per_event_us": WAIT_PER_EVENT.as_micros() as u64,
            "events": withdrawals,
            "partitions": partitions,
            "events_per_s": many_rate,
            "one_partition_events_per_s": one_rate,
            "speedup": if one_rate > 0.0 { (many_rate / one_rate * 100.0).round() / 100.0 } else { 0.0 },
        }),
    );
    r.notes.push(format!(
        "slow handler: the withdrawals (10%) with {} µs of simulated I/O each (std::thread::sleep \
         in block_in_place, paid every {} ms of owed time), in 1 and {partitions} partitions \
         (checkpoints in the store under test after every {READ_BATCH} events read, a fresh kernel \
         per run)",
        WAIT_PER_EVENT.as_micros(),
        PAY_EVERY.as_millis()
    ));
    Ok(())
}

/// What the summary line of W5 adds for the slow handler (nothing without `--partitions`).
pub fn summary(result: &serde_json::Value) -> String {
    let g = |path: &str| result.pointer(path);
    match g("/slow_io/events_per_s") {
        None => String::new(),
        slow => format!(
            ", 100 µs handler in {} partitions {} events/s (1 partition: {})",
            human(g("/slow_io/partitions")),
            human(slow),
            human(g("/slow_io/one_partition_events_per_s"))
        ),
    }
}
