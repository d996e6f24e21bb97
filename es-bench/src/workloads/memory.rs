//! W6 memory: RSS per live aggregate, then passivation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::{Kernel, Store};
use es_examples::bank::{BankAccount, BankAccountEvent, Deposit, Deposited};
use serde_json::json;
use tokio::task::JoinSet;

use super::{Params, account_id, bank_kernel};
use crate::error::BenchError;
use crate::report::{RunResult, progress};
use crate::stores::{StoreEnv, StoreKind};
use crate::sys::rss_bytes;

const CLIENTS: usize = 64;
const PASSIVATE_AFTER: Duration = Duration::from_secs(1);

/// One deposit to each of `n` accounts, `CLIENTS` at a time. With `command_ids`, deposit `i`
/// has the command id `{label}/{i}`: each call's commands are new ones (the same id again
/// would be answered from the idempotency window, and append nothing).
async fn touch_all(
    kernel: &Kernel,
    n: u64,
    label: &str,
    command_ids: bool,
) -> Result<(), BenchError> {
    let ids: Arc<Vec<String>> = Arc::new((0..n).map(account_id).collect());
    let next = Arc::new(AtomicU64::new(0));
    let bar = progress(n, label);
    let mut set = JoinSet::new();
    for _ in 0..CLIENTS {
        let (kernel, ids, next, bar) = (kernel.clone(), ids.clone(), next.clone(), bar.clone());
        let label = label.to_owned();
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, BenchError>(());
                }
                let options = if command_ids {
                    DispatchOptions::default().command_id(format!("{label}/{i}"))
                } else {
                    DispatchOptions::default()
                };
                kernel
                    .dispatch_with::<BankAccount>(&ids[i as usize], Deposit { amount: 1 }, options)
                    .await
                    .map_err(|e| BenchError::Dispatch(format!("W6 command {i}: {e}")))?;
                bar.inc(1);
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The RSS one event costs in a memory store holding one-event streams: `n` store-level
/// appends to a separate store, kept alive until the end of the run so its memory is not
/// reused.
async fn store_cost(n: u64) -> Result<(MemoryStore, f64), BenchError> {
    let calibration = MemoryStore::new();
    let event = BankAccountEvent::from(Deposited { amount: 1 }).to_new_event()?;
    let before = rss_bytes()?;
    for i in 0..n {
        let stream = StreamId::new("bank_account", format!("cal-{i}"));
        // As the kernel writes it: one id (a UUID's length) shared by the three id fields,
        // and a timestamp.
        let id: Arc<str> = Arc::from(format!("{:036}", i));
        let mut event = event.clone();
        event.envelope.command_id = Some(id.clone());
        event.envelope.correlation_id = Some(id.clone());
        event.envelope.causation_id = Some(id);
        event.timestamp = Some(es_core::clock::Clock::now(&es_core::clock::SystemClock));
        calibration
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await?;
    }
    let after = rss_bytes()?;
    Ok((calibration, after.saturating_sub(before) as f64 / n as f64))
}

/// W6: `accounts` aggregates made live by one command each on a kernel that does not passivate
/// (RSS per live aggregate), then on a kernel passivating after 1 s: live count and RSS once
/// it has passivated.
pub async fn w6(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    if env.kind() != StoreKind::Memory {
        return Err(BenchError::Usage(
            "W6 measures the memory store only (docs/benchmarks.md)".to_owned(),
        ));
    }
    let mut r = RunResult::default();
    let n = p.accounts;
    // First, a measure that needs no calibration: a fresh store already holding one event per
    // account (written at the store level), then one refused command per account (a zero
    // deposit: the aggregate rehydrates, stays live, and nothing is written). The store does
    // not grow while the aggregates come alive, so the RSS delta is the aggregates' alone.
    let prefilled = MemoryStore::new();
    let event = BankAccountEvent::from(Deposited { amount: 1 }).to_new_event()?;
    for i in 0..n {
        let stream = StreamId::new("bank_account", account_id(i));
        prefilled
            .append(&stream, ExpectedVersion::Any, vec![event.clone()])
            .await?;
    }
    let kernel0 = Kernel::builder()
        .store(prefilled.clone())
        .passivate_after(Duration::from_secs(3600))
        .register::<BankAccount>()
        .build()?;
    let ids: Vec<String> = (0..n).map(account_id).collect();
    let rss_prefilled = rss_bytes()?;
    for id in &ids {
        match kernel0
            .dispatch::<BankAccount>(id, Deposit { amount: 0 })
            .await
        {
            Err(DispatchError::Rejected(_)) => {}
            other => {
                return Err(BenchError::Dispatch(format!(
                    "W6 prefilled: a zero deposit to {id} must be refused, got {other:?}"
                )));
            }
        }
    }
    let live3 = kernel0.live_aggregates() as u64;
    let rss_live3 = rss_bytes()?;
    // (kernel0 and its store stay alive until the end, so that the memory of the
    // measures below is not what they freed.)
    let (calibration, per_event) = store_cost(n).await?;
    let store: Arc<dyn Store> = env.open().await?;

    let rss_start = rss_bytes()?;
    let kernel = bank_kernel(&store, |b| b.passivate_after(Duration::from_secs(3600)))?;
    touch_all(&kernel, n, "w6 live aggregates", p.command_ids).await?;
    let live = kernel.live_aggregates() as u64;
    let rss_live = rss_bytes()?;
    kernel.shutdown().await;
    drop(kernel);
    let rss_after_shutdown = rss_bytes()?;
    let per_live = rss_live.saturating_sub(rss_start) as f64 / live.max(1) as f64;
    r.set("aggregates", n);
    r.set("live", live);
    r.set("rss_start_bytes", rss_start);
    r.set("rss_live_bytes", rss_live);
    r.set("rss_bytes_per_live_aggregate", per_live.round());
    r.set("store_bytes_per_event", per_event.round());
    r.set(
        "rss_bytes_per_live_aggregate_excluding_store",
        (per_live - per_event).round(),
    );
    r.set("rss_after_shutdown_bytes", rss_after_shutdown);
    r.check(live == n, || {
        format!("W6: {live} live aggregates, expected {n}")
    });

    let kernel = bank_kernel(&store, |b| b.passivate_after(PASSIVATE_AFTER))?;
    let rss_before = rss_bytes()?;
    touch_all(&kernel, n, "w6 second kernel", p.command_ids).await?;
    let live_before = kernel.live_aggregates() as u64;
    let rss_live2 = rss_bytes()?;
    let start = Instant::now();
    let deadline = start + PASSIVATE_AFTER * 10;
    while kernel.live_aggregates() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = start.elapsed();
    let live_after = kernel.live_aggregates() as u64;
    let rss_passivated = rss_bytes()?;
    kernel.shutdown().await;
    drop(kernel);
    r.set(
        "passivation",
        json!({
            "passivate_after_ms": PASSIVATE_AFTER.as_millis() as u64,
            "rss_before_bytes": rss_before,
            "live_before": live_before,
            "rss_live_bytes": rss_live2,
            "waited_ms": waited.as_millis() as u64,
            "live_after": live_after,
            "rss_after_bytes": rss_passivated,
            "rss_after_minus_before_bytes": rss_passivated as i64 - rss_before as i64,
            "rss_after_minus_before_excluding_store_bytes":
                rss_passivated as i64 - rss_before as i64 - (per_event * n as f64) as i64,
        }),
    );
    r.check(live_after == 0, || {
        format!(
            "W6: {live_after} aggregates still live {} ms after the last command (passivation \
             after {} ms)",
            waited.as_millis(),
            PASSIVATE_AFTER.as_millis()
        )
    });
    let head = store.head_position().await?;
    r.check(head == 2 * n, || {
        format!("W6: the store holds {head} events, expected {}", 2 * n)
    });
    drop(calibration);
    kernel0.shutdown().await;
    r.set(
        "rss_bytes_per_live_aggregate_store_prefilled",
        (rss_live3.saturating_sub(rss_prefilled) as f64 / live3.max(1) as f64).round(),
    );
    r.check(live3 == n, || {
        format!("W6 prefilled: {live3} live aggregates, expected {n}")
    });
    drop(prefilled);

    r.notes.push(
        "rss_bytes_per_live_aggregate includes the store's copy of each aggregate's event; \
         store_bytes_per_event is measured first by store-level appends to one-event streams of \
         a separate memory store, and subtracted in ..._excluding_store. \
         ..._store_prefilled needs no calibration: the aggregates come alive (one refused \
         command each) on a store that already holds their events and does not grow. RSS is \
         what the allocator holds: freed memory it keeps is still counted after passivation"
            .to_owned(),
    );
    Ok(r)
}
