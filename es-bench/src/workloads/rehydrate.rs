//! W4 rehydrate: one long stream; restart; time to the first answer without and with
//! snapshots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::{Snapshot, Store};
use es_examples::bank::{BankAccount, BankAccountEvent, Deposit, Deposited, Withdrawn};
use serde_json::{Value, json};

use super::{Params, bank_kernel};
use crate::domain::Tally;
use crate::error::BenchError;
use crate::report::{RunResult, millis, progress, rate};
use crate::stores::StoreEnv;

const ACCOUNT: &str = "acc-long";
const LOAD_BATCH: u64 = 1_000;
const SNAPSHOT_EVERY: u64 = 1_000;

/// Appends `n` bank events to one stream at store level, in batches: every tenth event is a
/// withdrawal of 1, the others deposits of 2. Returns the balance.
async fn load(store: &Arc<dyn Store>, stream: &StreamId, n: u64) -> Result<u64, BenchError> {
    let deposit = BankAccountEvent::from(Deposited { amount: 2 }).to_new_event()?;
    let withdrawal = BankAccountEvent::from(Withdrawn { amount: 1 }).to_new_event()?;
    let bar = progress(n, "w4 loading one stream");
    let mut balance = 0u64;
    let mut version = 0u64;
    while version < n {
        let size = LOAD_BATCH.min(n - version);
        let batch = (version + 1..=version + size)
            .map(|seq| {
                if seq.is_multiple_of(10) {
                    balance -= 1;
                    withdrawal.clone()
                } else {
                    balance += 2;
                    deposit.clone()
                }
            })
            .collect();
        let done = store
            .append(stream, ExpectedVersion::Exact(version), batch)
            .await?;
        version = done.version;
        bar.inc(size);
    }
    bar.finish_and_clear();
    Ok(balance)
}

/// Drops the handle and opens the store again (for the memory store: the same store).
async fn restart(
    env: &StoreEnv,
    store: Arc<dyn Store>,
) -> Result<(Arc<dyn Store>, Duration), BenchError> {
    drop(store);
    let start = Instant::now();
    let store = env.open().await?;
    Ok((store, start.elapsed()))
}

/// One restart measured twice: the time to a state read (pure rehydration) and, after another
/// restart, the time to a deposit's answer (rehydration plus one commit).
async fn measure(
    env: &StoreEnv,
    store: Arc<dyn Store>,
    snapshot_every: u64,
    expect: (u64, u64),
    stream_len: u64,
    r: &mut RunResult,
    label: &str,
) -> Result<(Arc<dyn Store>, Value), BenchError> {
    let (expected_balance, expected_version) = expect;
    let (store, open) = restart(env, store).await?;
    let start = Instant::now();
    let kernel = bank_kernel(&store, |b| b.snapshot_every(snapshot_every))?;
    let state = kernel.state::<BankAccount>(ACCOUNT).await;
    let replay = start.elapsed();
    kernel.shutdown().await;
    drop(kernel);
    let state = state.map_err(|e| BenchError::Dispatch(format!("W4 state read: {e}")))?;
    r.check(state.balance == expected_balance, || {
        format!(
            "W4 {label}: rehydrated balance {}, expected {expected_balance}",
            state.balance
        )
    });
    let snapshot = store
        .load_latest(&StreamId::new("bank_account", ACCOUNT))
        .await?;
    let snapshot_version = match (snapshot_every, &snapshot) {
        (0, _) => 0,
        (_, Some(s)) => s.version,
        (_, None) => 0,
    };
    r.check(snapshot_every == 0 || snapshot_version > 0, || {
        format!("W4 {label}: no snapshot exists before the restart")
    });
    let replayed = expected_version - snapshot_version;

    let (store, _) = restart(env, store).await?;
    let start = Instant::now();
    let kernel = bank_kernel(&store, |b| b.snapshot_every(snapshot_every))?;
    let answer = kernel
        .dispatch::<BankAccount>(ACCOUNT, Deposit { amount: 1 })
        .await;
    let first_answer = start.elapsed();
    kernel.shutdown().await;
    drop(kernel);
    let done = answer.map_err(|e| BenchError::Dispatch(format!("W4 first command: {e}")))?;
    r.check(done.version == expected_version + 1, || {
        format!(
            "W4 {label}: first command left version {}, expected {}",
            done.version,
            expected_version + 1
        )
    });
    let figures = json!({
        "open_ms": millis(open),
        "replay_ms": millis(replay),
        "events_replayed": replayed,
        "events_per_s": if replayed > 0 { json!(rate(replayed, replay)) } else { Value::Null },
        "stream_events_per_s": rate(stream_len, replay),
        "first_answer_ms": millis(first_answer),
        "snapshot_version": snapshot_version,
    });
    Ok((store, figures))
}

/// The evolved stream: `n` events stored at version 1 (`{"amount": 1}`), replayed after a
/// restart by a kernel whose event is at version 3 (a two-step upcaster chain).
async fn upcast_replay(
    env: &StoreEnv,
    store: Arc<dyn Store>,
    n: u64,
) -> Result<(Arc<dyn Store>, Value), BenchError> {
    let stream = StreamId::new("bench_tally", ACCOUNT);
    let v1 = NewEvent::new("bench.counted", br#"{"amount":1}"#.to_vec()).version(1);
    let bar = progress(n, "w4 loading version-1 events");
    let mut version = 0u64;
    while version < n {
        let size = LOAD_BATCH.min(n - version);
        let batch = (0..size).map(|_| v1.clone()).collect();
        version = store
            .append(&stream, ExpectedVersion::Exact(version), batch)
            .await?
            .version;
        bar.inc(size);
    }
    bar.finish_and_clear();
    let (store, _) = restart(env, store).await?;
    let start = Instant::now();
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<Tally>()
        .build()?;
    let state = kernel.state::<Tally>(ACCOUNT).await;
    let replay = start.elapsed();
    kernel.shutdown().await;
    drop(kernel);
    let state = state.map_err(|e| BenchError::Dispatch(format!("W4 upcast state read: {e}")))?;
    if state.total != n {
        return Err(BenchError::Dispatch(format!(
            "W4 upcast: rehydrated total {}, expected {n}",
            state.total
        )));
    }
    let figures = json!({
        "replay_ms": millis(replay),
        "events_replayed": n,
        "events_per_s": rate(n, replay),
    });
    Ok((store, figures))
}

/// W4: load `events` events into one stream; restart and measure without snapshots; save a
/// snapshot of the correct state; restart and measure with `snapshot_every(1000)`.
pub async fn w4(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let mut r = RunResult::default();
    let stream = StreamId::new("bank_account", ACCOUNT);
    let n = p.events.max(1);
    let store = env.open().await?;
    let start = Instant::now();
    let mut balance = load(&store, &stream, n).await?;
    r.set("load_events_per_s", rate(n, start.elapsed()));
    r.set("stream_events", n);

    let (store, without) =
        measure(env, store, 0, (balance, n), n, &mut r, "without snapshots").await?;
    balance += 1;
    let version = n + 1;
    let state = serde_json::to_vec(&BankAccount {
        balance,
        closed: false,
    })
    .map_err(|e| BenchError::Dispatch(format!("serializing the snapshot state: {e}")))?;
    SnapshotStore::save(&*store, Snapshot::new(stream.clone(), version, state)).await?;
    let (store, with) = measure(
        env,
        store,
        SNAPSHOT_EVERY,
        (balance, version),
        version,
        &mut r,
        "with snapshots",
    )
    .await?;
    let (store, upcast) = upcast_replay(env, store, n).await?;
    drop(store);
    r.set("without_snapshot", without);
    r.set("with_snapshot", with);
    r.set("upcast_v1_chain2", upcast);
    r.notes.push(format!(
        "replay_ms: restart, new kernel, kernel.state (pure rehydration); first_answer_ms: another \
         restart, new kernel, one Deposit answered (rehydration plus one commit); the snapshot \
         (version {version}) is saved with SnapshotStore::save of the correct state and read by a \
         kernel with snapshot_every({SNAPSHOT_EVERY})"
    ));
    r.notes.push(
        "upcast_v1_chain2: another stream of the same length, every event stored at version 1 \
         and read at version 3 through two upcasters; restart, new kernel, kernel.state"
            .to_owned(),
    );
    if env.kind() == crate::stores::StoreKind::Memory {
        r.notes
            .push("memory: a restart is a new kernel on the same store".to_owned());
    }
    Ok(r)
}
