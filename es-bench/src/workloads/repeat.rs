//! Repeat: what a command id costs, and what a duplicate costs. One account, one client, each
//! command awaited (like W2): `commands` deposits with fresh explicit ids, then the last
//! `min(commands, 1000)` of them sent again (each answered from the aggregate's idempotency
//! window, nothing written), then as many deposits without an id for reference. Latencies are
//! in nanoseconds.

use std::time::Instant;

use es_core::DispatchOptions;
use es_examples::bank::{BankAccount, Deposit};
use hdrhistogram::Histogram;

use super::{Params, bank_kernel};
use crate::error::BenchError;
use crate::report::{RunResult, latency_histogram, progress};
use crate::stores::StoreEnv;

/// The default idempotency window: repeats are taken from within it.
const WINDOW: u64 = 1_000;

/// Sends deposits `ids` (or `count` without ids) one at a time; returns the latencies and the
/// last version seen.
async fn send(
    kernel: &es_core::Kernel,
    ids: Option<&[String]>,
    count: u64,
    label: &str,
) -> Result<(Histogram<u64>, u64), BenchError> {
    let bar = progress(count, label);
    let mut latency = latency_histogram();
    let mut version = 0;
    for i in 0..count {
        let sent = Instant::now();
        let done = match ids {
            Some(ids) => {
                let opts = DispatchOptions::default().command_id(ids[i as usize].clone());
                kernel
                    .dispatch_with::<BankAccount>("acc-repeat", Deposit { amount: 1 }, opts)
                    .await
            }
            None => {
                kernel
                    .dispatch::<BankAccount>("acc-repeat", Deposit { amount: 1 })
                    .await
            }
        }
        .map_err(|e| BenchError::Dispatch(format!("{label}: command {i} failed: {e}")))?;
        version = done.version;
        let nanos = u64::try_from(sent.elapsed().as_nanos().max(1)).unwrap_or(u64::MAX);
        latency.saturating_record(nanos);
        if i % 64 == 63 {
            bar.inc(64);
        }
    }
    bar.finish_and_clear();
    Ok((latency, version))
}

/// Latency figures in nanoseconds (a duplicate on the memory store takes about a microsecond,
/// below the resolution of the other workloads' microsecond figures).
fn nanos_json(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50_ns": h.value_at_quantile(0.50),
        "p99_ns": h.value_at_quantile(0.99),
        "p999_ns": h.value_at_quantile(0.999),
        "max_ns": h.max(),
        "mean_ns": h.mean().round(),
    })
}

/// The repeat workload (see the module docs).
pub async fn repeat(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let store = env.open().await?;
    let kernel = bank_kernel(&store, |b| b)?;
    let n = p.commands;
    let ids: Vec<String> = (0..n).map(|i| format!("deposit-{i}")).collect();
    let result = async {
        let (with_ids, v1) = send(&kernel, Some(&ids), n, "repeat: fresh ids").await?;
        let repeats = n.min(WINDOW);
        let tail = &ids[(n - repeats) as usize..];
        let (dups, v2) = send(&kernel, Some(tail), repeats, "repeat: duplicates").await?;
        let (plain, v3) = send(&kernel, None, n, "repeat: no ids").await?;
        Ok::<_, BenchError>((with_ids, dups, plain, v1, v2, v3, repeats))
    }
    .await;
    kernel.shutdown().await;
    let (with_ids, dups, plain, v1, v2, v3, repeats) = result?;
    let head = super::count_events(&store, env.kind()).await?;
    let mut r = RunResult::default();
    r.set("commands", n);
    r.set("duplicates", repeats);
    r.set("with_fresh_ids", nanos_json(&with_ids));
    r.set("duplicates_answered", nanos_json(&dups));
    r.set("without_ids", nanos_json(&plain));
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5).max(1) as f64;
    r.set("duplicate_p50_over_fresh_p50", p50(&dups) / p50(&with_ids));
    r.set("fresh_id_p50_over_no_id_p50", p50(&with_ids) / p50(&plain));
    r.check(v1 == n && v3 == 2 * n && head == 2 * n, || {
        format!("repeat: versions {v1}/{v3} and {head} events; expected {n}/{} (duplicates must write nothing)", 2 * n)
    });
    r.check(v2 <= n, || {
        format!("repeat: a duplicate answered version {v2} > {n}")
    });
    Ok(r)
}
