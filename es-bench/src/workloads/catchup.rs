//! W5 catch-up: projections scanning a large log of two aggregate types.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use es_core::Store;
use es_core::prelude::*;
use es_core::projection::run_once;
use es_examples::bank::{BankAccountEvent, Deposited, Withdrawn};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinSet;

use super::Params;
use crate::domain::{AUDIT_TYPE, EveryEvent, Noted, VAULT_TYPE, VaultDeposits, Withdrawals};
use crate::error::BenchError;
use crate::report::{RunResult, progress, rate};
use crate::stores::StoreEnv;

/// Concurrent loaders (durable stores group-commit their appends).
const LOADERS: usize = 64;
/// The most events one load append carries.
const LOAD_BATCH: u64 = 1_000;

/// What the generated log holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// `Deposited` events.
    pub deposited: u64,
    /// `bank.withdrawn` events.
    pub withdrawn: u64,
    /// `audit.noted` events.
    pub noted: u64,
    /// Deposits minus withdrawals.
    pub net: i64,
    /// `Deposited` events of vault streams (also counted in `deposited` and `net`: a
    /// projection by event name cannot tell them from the bank's).
    pub vault: u64,
}

/// The events of stream `s` (even: a bank account, odd: an audit log; with `vaults`, streams
/// `s % 10 == 1` are vaults instead), `per_stream` of them. In a bank stream, every fifth event
/// is a withdrawal of 1 and the others deposits of 2, so withdrawals are 10% of the whole log
/// and never overdraw. A vault holds deposits of 2 (10% of the log).
fn stream_events(
    s: u64,
    per_stream: u64,
    vaults: bool,
) -> Result<(StreamId, Vec<NewEvent>, Counts), BenchError> {
    let mut counts = Counts::default();
    let mut events = Vec::with_capacity(per_stream as usize);
    if vaults && s % 10 == 1 {
        let stream = StreamId::new(VAULT_TYPE, format!("vault-{s}"));
        for _ in 1..=per_stream {
            counts.deposited += 1;
            counts.vault += 1;
            counts.net += 2;
            events.push(Deposited { amount: 2 }.to_new_event()?);
        }
        Ok((stream, events, counts))
    } else if s.is_multiple_of(2) {
        let stream = StreamId::new("bank_account", format!("acc-{s}"));
        for seq in 1..=per_stream {
            let event = if seq.is_multiple_of(5) {
                counts.withdrawn += 1;
                counts.net -= 1;
                BankAccountEvent::from(Withdrawn { amount: 1 })
            } else {
                counts.deposited += 1;
                counts.net += 2;
                BankAccountEvent::from(Deposited { amount: 2 })
            };
            events.push(event.to_new_event()?);
        }
        Ok((stream, events, counts))
    } else {
        let stream = StreamId::new(AUDIT_TYPE, format!("log-{s}"));
        for seq in 1..=per_stream {
            counts.noted += 1;
            let note = Noted {
                n: seq,
                note: "checked".to_owned(),
            };
            events.push(note.to_new_event()?);
        }
        Ok((stream, events, counts))
    }
}

/// Loads `streams` streams of `per_stream` events at store level, `LOADERS` appenders at once.
async fn load(
    store: &Arc<dyn Store>,
    streams: u64,
    per_stream: u64,
    vaults: bool,
) -> Result<Counts, BenchError> {
    let bar = progress(streams * per_stream, "w5 loading the log");
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..LOADERS {
        let (store, next, bar) = (store.clone(), next.clone(), bar.clone());
        set.spawn(async move {
            let mut total = Counts::default();
            loop {
                let s = next.fetch_add(1, Ordering::Relaxed);
                if s >= streams {
                    return Ok::<_, BenchError>(total);
                }
                let (stream, events, counts) = stream_events(s, per_stream, vaults)?;
                let mut version = 0;
                let mut events = events.into_iter().peekable();
                while events.peek().is_some() {
                    let batch: Vec<NewEvent> = events.by_ref().take(LOAD_BATCH as usize).collect();
                    let size = batch.len() as u64;
                    let done = store
                        .append(&stream, ExpectedVersion::Exact(version), batch)
                        .await?;
                    version = done.version;
                    bar.inc(size);
                }
                total.deposited += counts.deposited;
                total.withdrawn += counts.withdrawn;
                total.noted += counts.noted;
                total.net += counts.net;
                total.vault += counts.vault;
            }
        });
    }
    let mut total = Counts::default();
    while let Some(done) = set.join_next().await {
        let counts = done??;
        total.deposited += counts.deposited;
        total.withdrawn += counts.withdrawn;
        total.noted += counts.noted;
        total.net += counts.net;
        total.vault += counts.vault;
    }
    bar.finish_and_clear();
    Ok(total)
}

/// W5: `events` events over `accounts` streams (half bank accounts, half audit logs); the
/// time of `run_once` for a projection of withdrawals only (10%) and one of every event.
pub async fn w5(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let mut r = RunResult::default();
    let streams = p.accounts.max(2);
    let per_stream = (p.events / streams).max(1);
    let total = streams * per_stream;
    let store = env.open().await?;
    let start = Instant::now();
    let expected = load(&store, streams, per_stream, p.w5_vaults).await?;
    r.set("load_events_per_s", rate(total, start.elapsed()));
    r.set("events", total);
    r.set("streams", streams);
    let head = super::count_events(&store, env.kind()).await?;
    r.check(head == total, || {
        format!("W5: the store holds {head} events, expected {total}")
    });

    let bar = progress(1, "w5 scanning (10% projection)");
    let start = Instant::now();
    let selective: Withdrawals = run_once(&*store).await?;
    let selective_time = start.elapsed();
    bar.set_message("w5 scanning (all-events projection)");
    let start = Instant::now();
    let every: EveryEvent = run_once(&*store).await?;
    let every_time = start.elapsed();
    if p.w5_vaults {
        bar.set_message("w5 scanning (10% aggregate-filtered projection)");
        let start = Instant::now();
        let vaults: VaultDeposits = run_once(&*store).await?;
        let vault_time = start.elapsed();
        r.set(
            "aggregate_selective",
            json!({
                "events_per_s": rate(total, vault_time),
                "handled": vaults.count,
                "handled_fraction": (vaults.count as f64 / total as f64 * 1000.0).round() / 1000.0,
                "ms": vault_time.as_millis() as u64,
            }),
        );
        r.check(vaults.count == expected.vault, || {
            format!(
                "W5: the vault projection saw {} deposits, expected {}",
                vaults.count, expected.vault
            )
        });
    }
    bar.finish_and_clear();
    if p.w5_rebuild {
        rebuild_while_reading(&store, total, &mut r).await?;
    }
    if let Some(partitions) = p.partitions {
        super::slow_io::slow_io(&store, partitions, expected.withdrawn, &mut r).await?;
    }

    r.set(
        "selective",
        json!({
            "events_per_s": rate(total, selective_time),
            "handled": selective.count,
            "handled_fraction": (selective.count as f64 / total as f64 * 1000.0).round() / 1000.0,
            "ms": selective_time.as_millis() as u64,
        }),
    );
    r.set(
        "all_events",
        json!({
            "events_per_s": rate(total, every_time),
            "handled": every.deposited + every.withdrawn + every.noted,
            "ms": every_time.as_millis() as u64,
        }),
    );
    r.check(
        selective.count == expected.withdrawn && selective.amount == expected.withdrawn,
        || {
            format!(
                "W5: the 10% projection saw {} withdrawals, expected {}",
                selective.count, expected.withdrawn
            )
        },
    );
    let seen = Counts {
        deposited: every.deposited,
        withdrawn: every.withdrawn,
        noted: every.noted,
        net: every.net,
        vault: expected.vault,
    };
    r.check(seen == expected, || {
        format!("W5: the all-events projection saw {seen:?}, expected {expected:?}")
    });
    r.notes.push(format!(
        "{streams} streams of {per_stream} events: even streams bank_account (every fifth event \
         bank.withdrawn, else Deposited), odd streams {AUDIT_TYPE} (audit.noted); loaded at \
         store level by {LOADERS} concurrent appenders; scanned with es_core::projection::run_once"
    ));
    Ok(r)
}

/// A rebuild of the all-events projection while a task reads its `state()` in a loop: the
/// rebuild's time, and the latency of the reads taken while it ran (nanoseconds).
async fn rebuild_while_reading(
    store: &Arc<dyn Store>,
    total: u64,
    r: &mut RunResult,
) -> Result<(), BenchError> {
    let kernel = super::bank_kernel(store, |b| b)?;
    let handle = kernel
        .projections()
        .start::<EveryEvent>(ProjectionOptions::default())
        .await?;
    let head = store.head_position().await?;
    handle.wait_for(head).await?;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (handle, done) = (handle.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)
                .or_else(|_| Histogram::new(3))
                .map_err(|e| BenchError::Task(format!("latency histogram: {e}")))?;
            while !done.load(Ordering::Relaxed) {
                let start = Instant::now();
                let state = handle.state().await;
                let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                reads.saturating_record(ns.max(1));
                std::hint::black_box(state);
                tokio::task::yield_now().await;
            }
            Ok::<_, BenchError>(reads)
        })
    };
    let bar = progress(1, "w5 rebuilding (all-events projection)");
    let start = Instant::now();
    let position = kernel
        .projections()
        .rebuild::<EveryEvent>(ProjectionOptions::default())
        .await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    done.store(true, Ordering::Relaxed);
    let reads = reader.await??;
    let state = handle.state().await;
    kernel.shutdown().await;
    r.check(
        position == head && state.deposited + state.withdrawn + state.noted == total,
        || format!("W5 rebuild: swapped in at {position} (head {head}) with {state:?}"),
    );
    r.set(
        "rebuild",
        json!({
            "ms": elapsed.as_millis() as u64,
            "events_per_s": rate(total, elapsed),
            "state_reads": reads.len(),
            "state_p50_ns": reads.value_at_quantile(0.50),
            "state_p99_ns": reads.value_at_quantile(0.99),
            "state_p999_ns": reads.value_at_quantile(0.999),
            "state_max_ns": reads.max(),
        }),
    );
    Ok(())
}
