//! W7 append: store-level appends in batches of 1, 100 and 1,000.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use es_core::prelude::*;
use es_examples::bank::{BankAccountEvent, Deposited};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use super::Params;
use crate::error::BenchError;
use crate::report::{RunResult, progress, rate};
use crate::stores::StoreEnv;
use crate::sys::ThreadTimes;

/// The batch sizes of docs/benchmarks.md.
pub const BATCHES: [u64; 3] = [1, 100, 1_000];
/// Events appended one per commit on a durable store at most (a durable commit costs
/// milliseconds; the rest of the million would take minutes without saying more).
const DURABLE_SINGLE_CAP: u64 = 100_000;
const DURABLE_SINGLE_CAP_QUICK: u64 = 5_000;

/// Appenders used when `--clients` is not given.
fn default_appenders(durable: bool, batch: u64) -> usize {
    match (durable, batch) {
        (false, _) => 1,
        (true, 1) => 1_024,
        (true, _) => 64,
    }
}

/// W7: for each batch size, a fresh store of the run's kind receives `events` events in
/// appends of that many events, from concurrent appenders pulling append indexes from a shared
/// counter; append `j` goes to stream `j mod accounts` (with `--w7-spread`, W1's
/// `(j * 7919) mod accounts`) with `ExpectedVersion::Any`.
pub async fn w7(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let mut r = RunResult::default();
    let durable = env.kind().is_durable();
    let event = BankAccountEvent::from(Deposited { amount: 1 }).to_new_event()?;
    let streams: Arc<Vec<StreamId>> = Arc::new(
        (0..p.accounts)
            .map(|i| StreamId::new("bank_account", format!("acc-{i}")))
            .collect(),
    );
    // The first batch size uses the run's store; the others get a fresh one each (the run's
    // store must stay empty for them), created next to it.
    let mut by_batch = Map::new();
    for (k, batch) in BATCHES.into_iter().enumerate() {
        let mut n = p.events;
        if durable && batch == 1 {
            let cap = if p.quick {
                DURABLE_SINGLE_CAP_QUICK
            } else {
                DURABLE_SINGLE_CAP
            };
            if n > cap {
                r.notes.push(format!(
                    "batch 1 on a durable store: {cap} events instead of {n} (every append is a \
                     commit; group commit across {} concurrent appenders)",
                    default_appenders(durable, 1)
                ));
                n = cap;
            }
        }
        let appends = n / batch;
        let n = appends * batch;
        let appenders = match p.clients {
            0 => default_appenders(durable, batch),
            c => c,
        };
        let sub = if k == 0 {
            None
        } else {
            Some(env.sibling().await?)
        };
        let env = sub.as_ref().unwrap_or(env);
        let store = env.open().await?;
        let bar = progress(n, &format!("w7 batches of {batch}"));
        let next = Arc::new(AtomicU64::new(0));
        let before = ThreadTimes::now();
        let start = Instant::now();
        let mut set = JoinSet::new();
        let spread = p.w7_spread;
        for _ in 0..appenders {
            let (store, next, bar, streams) =
                (store.clone(), next.clone(), bar.clone(), streams.clone());
            let event = event.clone();
            set.spawn(async move {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= appends {
                        return Ok::<_, BenchError>(());
                    }
                    let n = streams.len() as u64;
                    let i = if spread {
                        super::commands::spread(j, n)
                    } else {
                        j % n
                    };
                    // Below the length, itself a usize: the cast cannot truncate.
                    let stream = &streams[i as usize];
                    let events = vec![event.clone(); batch as usize];
                    store.append(stream, ExpectedVersion::Any, events).await?;
                    if j.is_multiple_of(16) {
                        bar.inc(16 * batch);
                    }
                }
            });
        }
        let mut failure = None;
        while let Some(done) = set.join_next().await {
            if let Err(e) = done.map_err(BenchError::from).and_then(|d| d) {
                failure.get_or_insert(e);
            }
        }
        let elapsed = start.elapsed();
        // Read while the store's threads still run.
        let threads = ThreadTimes::now().figures_since(&before);
        bar.finish_and_clear();
        if let Some(e) = failure {
            return Err(e);
        }
        let head = super::count_events(&store, env.kind()).await?;
        drop(store);
        if let Some(sub) = sub {
            sub.close().await?;
        }
        r.check(head == n, || {
            format!("W7 batch {batch}: the store holds {head} events, expected {n}")
        });
        let mut figures = json!({
            "events": n,
            "appenders": appenders,
            "events_per_s": rate(n, elapsed),
            "appends_per_s": rate(appends, elapsed),
            "ms": elapsed.as_millis() as u64,
        });
        for (name, value) in threads {
            figures[name] = value;
        }
        by_batch.insert(format!("batch_{batch}"), figures);
    }
    r.figures
        .extend(by_batch.into_iter().map(|(k, v)| (k, v as Value)));
    Ok(r)
}
