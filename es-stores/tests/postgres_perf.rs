//! Throughput of PostgresStore at store level (ignored by default; run in release):
//!
//! ```text
//! ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test \
//!   cargo test --release -p es-stores --no-default-features --features postgres \
//!   --test postgres_perf -- --ignored --nocapture
//! ```
//!
//! `PG_PERF_LANES` (default 2) and `PG_PERF_COMMANDS` (default 20000) tune the run.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use es_stores::PostgresStore;
use postgres_common::{SchemaGuard, exclusive, pg_url, pool, unique_schema};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn deposit() -> NewEvent {
    NewEvent::new("Deposited", br#"{"amount":1}"#.to_vec())
}

async fn fresh(url: &str, lanes: usize) -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema("perf");
    let store = PostgresStore::builder(pool(url, 24).await)
        .schema(schema.clone())
        .lanes(lanes)
        .build()
        .await
        .unwrap();
    (
        store,
        SchemaGuard {
            url: url.to_owned(),
            schema,
            isolation: None,
        },
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// W1 at store level: 64 clients, 10,000 streams, one event per append with `Exact` versions
/// (as the kernel appends), stream of command i = (i * 7919) mod 10,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
async fn w1_spread_64_clients() {
    let Some(url) = pg_url("w1_spread_64_clients") else {
        return;
    };
    let _alone = exclusive().await;
    let lanes = env("PG_PERF_LANES", 2);
    let commands = env("PG_PERF_COMMANDS", 20_000);
    const CLIENTS: usize = 64;
    const STREAMS: usize = 10_000;
    let (store, _guard) = fresh(&url, lanes).await;
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..STREAMS).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (store, versions, next, conflicts) = (
            store.clone(),
            versions.clone(),
            next.clone(),
            conflicts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= commands {
                    return latencies;
                }
                let n = (i * 7919) % STREAMS;
                let stream = StreamId::new("bank_account", format!("acc-{n}"));
                let t = Instant::now();
                loop {
                    let v = versions[n].load(Ordering::Acquire);
                    match store
                        .append(&stream, ExpectedVersion::Exact(v), vec![deposit()])
                        .await
                    {
                        Ok(done) => {
                            versions[n].fetch_max(done.version, Ordering::AcqRel);
                            break;
                        }
                        Err(StoreError::Conflict { actual, .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            versions[n].fetch_max(actual, Ordering::AcqRel);
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let total = store.read_all(0, usize::MAX).await.unwrap().len();
    assert_eq!(total, commands);
    eprintln!(
        "{{\"workload\":\"W1-store\",\"lanes\":{lanes},\"clients\":{CLIENTS},\"appends\":{commands},\
         \"secs\":{:.2},\"appends_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"conflicts\":{}}}",
        elapsed.as_secs_f64(),
        commands as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        conflicts.load(Ordering::Relaxed)
    );
}

/// Batched appends: 64 clients appending batches of 100 events, and one client appending
/// batches of 1,000 (W7-like).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
async fn batched_appends() {
    let Some(url) = pg_url("batched_appends") else {
        return;
    };
    let _alone = exclusive().await;
    let lanes = env("PG_PERF_LANES", 2);
    for (clients, batch, appends_each) in [(64usize, 100usize, 5usize), (1, 1000, 50), (1, 1, 500)]
    {
        let (store, _guard) = fresh(&url, lanes).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let stream = StreamId::new("bulk", format!("s-{c}"));
                for k in 0..appends_each {
                    let events = (0..batch).map(|_| deposit()).collect();
                    store
                        .append(&stream, ExpectedVersion::Exact((k * batch) as u64), events)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = started.elapsed();
        let events = clients * batch * appends_each;
        eprintln!(
            "{{\"workload\":\"batched\",\"lanes\":{lanes},\"clients\":{clients},\"batch\":{batch},\
             \"events\":{events},\"secs\":{:.2},\"events_per_s\":{:.0}}}",
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64()
        );
    }
}
