//! W1 spread, W2 hot and W3 contend: commands through the kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use es_core::Kernel;
use es_examples::bank::{BankAccount, Deposit};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::{Params, account_id, bank_kernel};
use crate::error::BenchError;
use crate::report::{RunResult, latency_histogram, latency_json, progress, rate};
use crate::stores::StoreEnv;
use crate::sys::ThreadTimes;

/// What a pool of clients measured.
struct Drive {
    elapsed: Duration,
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// `clients` tasks pull command indexes `0..commands` from a shared counter and send
/// `Deposit { amount: 1 }` to account `account(i)`, each awaited.
async fn drive(
    kernel: &Kernel,
    clients: usize,
    commands: u64,
    ids: Arc<Vec<String>>,
    account: fn(u64, u64) -> u64,
    label: &str,
) -> Result<Drive, BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let bar = progress(commands, label);
    let accounts = ids.len() as u64;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let kernel = kernel.clone();
        let next = next.clone();
        let ids = ids.clone();
        let bar = bar.clone();
        set.spawn(async move {
            // Raw samples: a histogram per client (1,024 of them, ~240 KiB each, zeroed at the
            // start and merged at the end) would cost the run more than the commands do.
            let mut latency: Vec<u64> =
                Vec::with_capacity(usize::try_from(commands / clients as u64 + 1).unwrap_or(0));
            let (mut ok, mut errors, mut first_error, mut unreported) = (0, 0, None, 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= commands {
                    break;
                }
                let id = &ids[account(i, accounts) as usize];
                let sent = Instant::now();
                match kernel
                    .dispatch::<BankAccount>(id, Deposit { amount: 1 })
                    .await
                {
                    Ok(_) => {
                        ok += 1;
                        let micros = sent.elapsed().as_micros().max(1);
                        latency.push(u64::try_from(micros).unwrap_or(u64::MAX));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                unreported += 1;
                if unreported == 64 {
                    bar.inc(unreported);
                    unreported = 0;
                }
            }
            bar.inc(unreported);
            (latency, ok, errors, first_error)
        });
    }
    let mut total = Drive {
        elapsed: Duration::ZERO,
        latency: latency_histogram(),
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut samples = Vec::with_capacity(clients);
    while let Some(done) = set.join_next().await {
        let (latency, ok, errors, first_error) = done?;
        samples.push(latency);
        total.ok += ok;
        total.errors += errors;
        if total.first_error.is_none() {
            total.first_error = first_error;
        }
    }
    total.elapsed = start.elapsed();
    bar.finish_and_clear();
    for micros in samples.iter().flatten() {
        total.latency.saturating_record(*micros);
    }
    Ok(total)
}

/// W1's account (or W7's stream, with `--w7-spread`) of command `i` among `n`: `(i * 7919) mod
/// n`, so that consecutive commands go to accounts far apart.
pub fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(7919) % n
}

/// W1 spread: `accounts` accounts, `commands` deposits, `clients` concurrent clients; command
/// `i` goes to account `(i * 7919) mod accounts`.
pub async fn w1(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let store = env.open().await?;
    let kernel = bank_kernel(&store, |b| b)?;
    let ids: Arc<Vec<String>> = Arc::new((0..p.accounts).map(account_id).collect());
    let before = ThreadTimes::now();
    let drive = drive(&kernel, p.clients, p.commands, ids, spread, "w1 commands").await;
    // Read before shutdown, while the store's threads still run.
    let threads = ThreadTimes::now().figures_since(&before);
    kernel.shutdown().await;
    let drive = drive?;
    let head = super::count_events(&store, env.kind()).await?;
    let mut r = RunResult::default();
    r.set("commands_per_s", rate(drive.ok, drive.elapsed));
    r.set("latency", latency_json(&drive.latency));
    r.set("ok", drive.ok);
    r.set("errors", drive.errors);
    r.set("elapsed_ms", drive.elapsed.as_millis() as u64);
    r.set("events_in_store", head);
    for (name, value) in threads {
        r.set(name, value);
    }
    if let Some(e) = &drive.first_error {
        r.notes.push(format!("first error: {e}"));
    }
    r.check(drive.errors == 0, || {
        format!(
            "W1: {} of {} commands failed (first: {})",
            drive.errors,
            p.commands,
            drive.first_error.clone().unwrap_or_default()
        )
    });
    r.check(drive.ok == p.commands && head == p.commands, || {
        format!(
            "W1: {} commands succeeded and the store holds {head} events, expected {}",
            drive.ok, p.commands
        )
    });
    Ok(r)
}

/// Median latency of `n` sequential store-level appends of one event (the commit latency a
/// single awaited client pays at best).
async fn commit_baseline(
    store: &Arc<dyn es_core::Store>,
    n: usize,
) -> Result<CommitBaseline, BenchError> {
    use es_core::prelude::*;
    let stream = StreamId::new("bench_probe", "commit-latency");
    let mut micros = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let event = NewEvent::new("Probe", br#"{"n":1}"#.to_vec());
        let start = Instant::now();
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let mean = all.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    micros.sort_by(f64::total_cmp);
    Ok(CommitBaseline {
        median_us: micros[micros.len() / 2].round(),
        mean_us: mean.round(),
    })
}

/// Sequential one-event store appends: what one awaited client pays per command at best.
struct CommitBaseline {
    median_us: f64,
    mean_us: f64,
}

/// W2 hot: one account, `commands` deposits from one client, each awaited.
pub async fn w2(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let store = env.open().await?;
    let mut r = RunResult::default();
    let baseline = if env.kind().is_durable() {
        Some(commit_baseline(&store, if p.quick { 10 } else { 1000 }).await?)
    } else {
        None
    };
    let kernel = bank_kernel(&store, |b| b)?;
    let n = p.commands;
    let tail_from = n - n / 10;
    let bar = progress(n, "w2 commands");
    let mut latency = latency_histogram();
    let mut failure = None;
    let mut version = 0;
    let start = Instant::now();
    let mut tail_start = start;
    for i in 0..n {
        if i == tail_from {
            tail_start = Instant::now();
        }
        let sent = Instant::now();
        match kernel
            .dispatch::<BankAccount>("acc-hot", Deposit { amount: 1 })
            .await
        {
            Ok(done) => version = done.version,
            Err(e) => {
                failure = Some(format!("command {i} failed: {e}"));
                break;
            }
        }
        let micros = u64::try_from(sent.elapsed().as_micros().max(1)).unwrap_or(u64::MAX);
        latency.saturating_record(micros);
        if i % 64 == 63 {
            bar.inc(64);
        }
    }
    let end = Instant::now();
    bar.finish_and_clear();
    kernel.shutdown().await;
    let overall = rate(version, end - start);
    let tail = rate(n - tail_from, end - tail_start);
    r.set("commands_per_s", overall);
    r.set("last_10pct_commands_per_s", tail);
    r.set(
        "last_10pct_ratio",
        if overall > 0.0 {
            (tail / overall * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    );
    r.set("latency", latency_json(&latency));
    r.set("final_version", version);
    if let Some(baseline) = baseline.filter(|b| b.mean_us > 0.0 && b.median_us > 0.0) {
        r.set("store_append_median_us", baseline.median_us);
        r.set("store_append_mean_us", baseline.mean_us);
        let limit = 1e6 / baseline.mean_us;
        r.set("commit_limit_commands_per_s", limit.round());
        r.set(
            "fraction_of_commit_limit",
            (overall / limit * 1000.0).round() / 1000.0,
        );
        let p50 = latency.value_at_quantile(0.5) as f64;
        if p50 > 0.0 {
            r.set(
                "fraction_of_commit_limit_p50",
                (baseline.median_us / p50 * 1000.0).round() / 1000.0,
            );
        }
        r.notes.push(
            "commit limit: 1,000 sequential one-event store appends before the run; \
             commit_limit = 1 / their mean latency, compared with the commands' mean rate \
             (fraction_of_commit_limit); fraction_of_commit_limit_p50 compares the medians"
                .to_owned(),
        );
    }
    r.check(failure.is_none(), || {
        format!("W2: {}", failure.clone().unwrap_or_default())
    });
    r.check(version == n, || {
        format!("W2: final version {version}, expected {n}")
    });
    Ok(r)
}

/// W3 contend: `clients` clients send `commands` deposits in total to one account.
pub async fn w3(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let store = env.open().await?;
    let kernel = bank_kernel(&store, |b| b)?;
    let ids = Arc::new(vec!["acc-contended".to_owned()]);
    let drive = drive(&kernel, p.clients, p.commands, ids, |_, _| 0, "w3 commands").await;
    let balance = match &drive {
        Ok(_) => kernel
            .state::<BankAccount>("acc-contended")
            .await
            .map(|s| s.balance)
            .map_err(|e| BenchError::Dispatch(format!("reading the final balance: {e}"))),
        Err(_) => Ok(0),
    };
    kernel.shutdown().await;
    let drive = drive?;
    let balance = balance?;
    let version = store
        .stream_version(&es_core::StreamId::new("bank_account", "acc-contended"))
        .await?;
    let mut r = RunResult::default();
    r.set("successful_commands_per_s", rate(drive.ok, drive.elapsed));
    r.set("successes", drive.ok);
    r.set("failures", drive.errors);
    r.set("final_balance", balance);
    r.set("expected_balance", p.commands);
    r.set("final_version", version);
    r.set("latency", latency_json(&drive.latency));
    r.check(drive.errors == 0, || {
        format!(
            "W3: {} commands failed (first: {})",
            drive.errors,
            drive.first_error.clone().unwrap_or_default()
        )
    });
    r.check(balance == p.commands && version == p.commands, || {
        format!(
            "W3: final balance {balance} and version {version}, expected {}",
            p.commands
        )
    });
    Ok(r)
}
