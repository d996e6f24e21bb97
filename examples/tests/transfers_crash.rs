//! Exactly-once transfers across SIGKILL: a child process runs the `transfers` process manager
//! on an LmdbStore while 8 requesters ask for transfers; the parent SIGKILLs it at a different
//! point each round (21 rounds), reopens the store, lets a fresh manager finish what was in
//! flight, and checks that money is conserved, that every transfer completed, was refused, or
//! was compensated exactly once, and that no command took effect twice.
//!
//! The child is this test binary re-invoked with `ES_PM_CRASH_CHILD=<dir>`.
#![cfg(feature = "lmdb")]
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::process::ProcessHandle;
use es_examples::bank::*;
use es_stores::LmdbStore;

const CHILD_ENV: &str = "ES_PM_CRASH_CHILD";
const ROUND_ENV: &str = "ES_PM_CRASH_ROUND";
const MARK: &str = "@@ack";
const ACCOUNTS: usize = 8;
const SEED: u64 = 1_000;
const REQUESTERS: usize = 8;
const ROUNDS: u64 = 21;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn account(i: usize) -> String {
    format!("a{}", i % ACCOUNTS)
}

fn kernel(store: &LmdbStore) -> Result<Kernel, Box<dyn std::error::Error>> {
    Ok(Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .register::<TransferDesk>()
        .build()?)
}

async fn start(kernel: &Kernel) -> Result<ProcessHandle<Transfer>, Box<dyn std::error::Error>> {
    // Small batches: many checkpoints, so kills land between and inside them.
    Ok(kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default().batch_size(16))
        .await?)
}

#[test]
fn transfers_crash_child() -> TestResult {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let round: usize = std::env::var(ROUND_ENV)?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = LmdbStore::open(&dir)?;
        let kernel = kernel(&store)?;
        let _manager = start(&kernel).await?;
        let mut requesters = Vec::new();
        for r in 0..REQUESTERS {
            let kernel = kernel.clone();
            requesters.push(tokio::spawn(async move {
                for i in 0usize.. {
                    let from = account(r + i);
                    let to = if i % 7 == 3 {
                        "closed".to_owned()
                    } else {
                        account(r + i + 1 + i % 3)
                    };
                    let amount = 1 + ((i * 37 + r * 11) % 300) as u64;
                    let id = format!("req-{round}-{r}-{i}");
                    kernel
                        .dispatch_with::<TransferDesk>(
                            "desk",
                            RequestTransfer { from, to, amount },
                            DispatchOptions::default().command_id(id),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{MARK} {r} {i}")
                        .and_then(|()| out.flush())
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }));
        }
        for requester in requesters {
            requester.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Runs the child for `round` until it acknowledged `kill_after` requests, then SIGKILLs it.
fn run_and_kill(
    dir: &str,
    round: u64,
    kill_after: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let round = round.to_string();
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "transfers_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, &round)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let started = Instant::now();
    let mut acks = 0;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        if line?.contains(MARK) {
            acks += 1;
        }
        if !killed && (acks >= kill_after || started.elapsed() > Duration::from_secs(60)) {
            child.kill()?; // SIGKILL
            killed = true;
        }
    }
    let status = child.wait()?;
    if !killed {
        return Err(format!("child exited on its own: {status}").into());
    }
    Ok(acks)
}

/// Lets a fresh manager finish every transfer in flight.
async fn settle(store: &LmdbStore, manager: &ProcessHandle<Transfer>) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let head = store.head_position().await?;
        manager.wait_for(head).await?;
        if manager.instances().await == 0 && store.head_position().await? == head {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the transfers did not settle".into());
        }
    }
}

/// Recovers after a kill, then checks the invariants over the whole log. Returns how many
/// transfers completed, were refused, and were compensated, and how many commands the
/// recovering manager sent (work the kill left in flight, some of it already done).
async fn verify(dir: &str) -> Result<([usize; 3], u64), Box<dyn std::error::Error>> {
    let store = LmdbStore::open(dir)?;
    let kernel = kernel(&store)?;
    let manager = start(&kernel).await?;
    settle(&store, &manager).await?;
    let recovered = manager.status().commands_sent;
    let mut total = 0;
    for i in 0..ACCOUNTS {
        total += kernel.state::<BankAccount>(account(i)).await?.balance;
    }
    total += kernel.state::<BankAccount>("closed").await?.balance;
    assert_eq!(total, SEED * ACCOUNTS as u64, "money is conserved");

    let events = store.read_all(1, usize::MAX).await?;
    let mut command_ids = HashSet::new();
    for e in &events {
        let id = e.command_id().ok_or("an event without a command id")?;
        assert!(
            command_ids.insert((e.stream.clone(), id.to_owned())),
            "command {id} took effect twice on {}",
            e.stream
        );
    }
    // Per transfer: withdrawals, deposits to `to`, deposits back to `from`.
    let mut transfers: HashMap<String, (TransferRequested, [usize; 3])> = HashMap::new();
    for e in &events {
        if e.event_type == "bank.transfer_requested" {
            let request = Recorded::<TransferRequested>::decode(e)?.payload;
            let key = e.correlation_id().ok_or("no correlation id")?.to_owned();
            assert!(
                transfers.insert(key, (request, [0; 3])).is_none(),
                "one request per key"
            );
        }
    }
    for e in &events {
        let Some(key) = e.correlation_id() else {
            continue;
        };
        let Some((request, counts)) = transfers.get_mut(key) else {
            continue;
        };
        let id = &e.stream.aggregate_id;
        match e.event_type.as_str() {
            "bank.withdrawn" if *id == request.from => counts[0] += 1,
            "Deposited" if *id == request.to => counts[1] += 1,
            "Deposited" if *id == request.from => counts[2] += 1,
            "bank.transfer_requested" => {}
            other => return Err(format!("unexpected {other} on {id} for transfer {key}").into()),
        }
    }
    let mut outcomes = [0; 3];
    for (key, (request, counts)) in &transfers {
        match counts {
            [1, 1, 0] => outcomes[0] += 1,
            [0, 0, 0] => outcomes[1] += 1,
            [1, 0, 1] if request.to == "closed" => outcomes[2] += 1,
            other => return Err(format!("transfer {key} ({request:?}) ended as {other:?}").into()),
        }
    }
    kernel.shutdown().await;
    Ok((outcomes, recovered))
}

#[test]
fn sigkill_while_transfers_run_takes_no_effect_twice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let dir_str = dir.path().to_str().ok_or("non-UTF-8 temp dir")?.to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = LmdbStore::open(&dir_str)?;
        let kernel = kernel(&store)?;
        for i in 0..ACCOUNTS {
            kernel
                .dispatch::<BankAccount>(account(i), Deposit { amount: SEED })
                .await?;
        }
        kernel.dispatch::<BankAccount>("closed", Close).await?;
        kernel.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut last = [0; 3];
    let mut recovered_total = 0;
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 5 + (seed % 150) as usize;
        let acks = run_and_kill(&dir_str, round, kill_after)?;
        assert!(
            acks >= kill_after.min(1),
            "round {round}: the child acknowledged nothing"
        );
        let (outcomes, recovered) = runtime.block_on(verify(&dir_str))?;
        recovered_total += recovered;
        println!(
            "round {round}: killed after {acks} requests; {recovered} commands sent on recovery; \
             completed, refused, compensated so far: {outcomes:?}"
        );
        assert!(outcomes.iter().sum::<usize>() > last.iter().sum::<usize>());
        last = outcomes;
    }
    assert!(last[0] > 0 && last[2] > 0, "both paths ran: {last:?}");
    assert!(recovered_total > 0, "some kills left transfers in flight");
    Ok(())
}
