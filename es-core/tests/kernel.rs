//! The kernel through its public API, on a hand-written aggregate.
#![allow(clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use es_core::kernel::BuildError;
use es_core::prelude::*;
use es_core::{Kernel, SnapshotStore, StoreError};

fn kernel(store: impl EventStore + SnapshotStore + CheckpointStore + Clone) -> Kernel {
    Kernel::builder()
        .store(store)
        .register::<Account>()
        .build()
        .expect("kernel builds")
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::test]
async fn versions_and_positions_follow_the_log() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let a1 = k
        .dispatch::<Account>("a", AccountCommand::Deposit(100))
        .await?;
    assert_eq!(a1.version, 1);
    assert_eq!(a1.events.len(), 1);
    assert_eq!(a1.events[0].position, 1);
    assert_eq!(a1.events[0].sequence, 1);
    assert_eq!(a1.events[0].stream, stream("a"));
    assert_eq!(a1.events[0].event_type, "Deposited");
    let b1 = k
        .dispatch::<Account>("b", AccountCommand::Deposit(5))
        .await?;
    assert_eq!((b1.version, b1.events[0].position), (1, 2));
    let a2 = k
        .dispatch::<Account>("a", AccountCommand::Withdraw(10))
        .await?;
    assert_eq!((a2.version, a2.events[0].position), (2, 3));
    assert_eq!(k.state::<Account>("a").await?.balance, 90);
    assert_eq!(store.stream_version(&stream("a")).await?, 2);
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rejection_and_empty_results_write_nothing() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    k.dispatch::<Account>("a", AccountCommand::Deposit(100))
        .await?;
    match k
        .dispatch::<Account>("a", AccountCommand::Withdraw(1000))
        .await
    {
        Err(DispatchError::Rejected(AccountError::InsufficientFunds { balance, requested })) => {
            assert_eq!((balance, requested), (100, 1000));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let touched = k.dispatch::<Account>("a", AccountCommand::Touch).await?;
    assert_eq!(touched.version, 1, "an empty result keeps the version");
    assert!(touched.events.is_empty());
    assert_eq!(store.head_position().await?, 1, "nothing was written");
    assert_eq!(k.state::<Account>("a").await?.balance, 100);
    Ok(())
}

#[tokio::test]
async fn multi_event_results_keep_order() -> Result {
    let k = kernel(MemoryStore::new());
    let done = k
        .dispatch::<Account>("a", AccountCommand::Split(3, 4))
        .await?;
    assert_eq!(done.version, 2);
    let seqs: Vec<_> = done
        .events
        .iter()
        .map(|e| (e.sequence, e.position))
        .collect();
    assert_eq!(seqs, vec![(1, 1), (2, 2)]);
    assert_eq!(done.events[0].payload, br#"{"amount":3}"#.to_vec());
    assert_eq!(done.events[1].payload, br#"{"amount":4}"#.to_vec());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_on_one_aggregate_serialize() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                k.dispatch::<Account>("hot", AccountCommand::Deposit(1))
                    .await?;
            }
            Ok::<_, DispatchError<AccountError>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(k.state::<Account>("hot").await?.balance, 800);
    let events = store.read_stream(&stream("hot"), 1, 10_000).await?;
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_mailbox_makes_senders_wait_without_losing_anything() -> Result {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store.clone())
        .mailbox_capacity(2)
        .max_batch(3)
        .register::<Account>()
        .build()?;
    let mut tasks = Vec::new();
    for _ in 0..48 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                k.dispatch::<Account>("narrow", AccountCommand::Deposit(1))
                    .await?;
            }
            Ok::<_, DispatchError<AccountError>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(store.stream_version(&stream("narrow")).await?, 480);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_aggregates_in_parallel() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("acc-{i}");
            for _ in 0..5 {
                k.dispatch::<Account>(&id, AccountCommand::Deposit(i))
                    .await?;
            }
            Ok::<_, DispatchError<AccountError>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(k.live_aggregates(), 200);
    for i in 0..200 {
        assert_eq!(k.state::<Account>(format!("acc-{i}")).await?.balance, 5 * i);
    }
    assert_eq!(store.head_position().await?, 1000);
    Ok(())
}

#[tokio::test]
async fn passivation_then_rehydration() -> Result {
    let store = FlakyStore::default();
    let k = Kernel::builder()
        .store(store.clone())
        .passivate_after(Duration::from_millis(50))
        .register::<Account>()
        .build()?;
    for i in 0..10 {
        k.dispatch::<Account>(format!("p-{i}"), AccountCommand::Deposit(7))
            .await?;
    }
    assert_eq!(k.live_aggregates(), 10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while k.live_aggregates() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "actors never passivated"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = store.stream_events_read.load(Ordering::SeqCst);
    let done = k
        .dispatch::<Account>("p-3", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.version, 2, "the rehydrated actor continues the stream");
    assert_eq!(store.stream_events_read.load(Ordering::SeqCst) - before, 1);
    assert_eq!(k.state::<Account>("p-3").await?.balance, 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_racing_passivation_are_never_lost() -> Result {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store.clone())
        .passivate_after(Duration::from_micros(200))
        .register::<Account>()
        .build()?;
    let mut expected = 0;
    for round in 0..300u64 {
        let mut tasks = Vec::new();
        for c in 0..3 {
            let k = k.clone();
            tasks.push(tokio::spawn(async move {
                if (round + c) % 4 == 0 {
                    tokio::time::sleep(Duration::from_micros(150 + round % 100)).await;
                }
                k.dispatch::<Account>("racy", AccountCommand::Deposit(1))
                    .await
            }));
        }
        for t in tasks {
            t.await??;
            expected += 1;
        }
        if round % 50 == 25 {
            // Quiet long enough for the actor to be passivated between rounds.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while k.live_aggregates() > 0 {
                assert!(tokio::time::Instant::now() < deadline, "never passivated");
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
        }
        if round % 50 == 0 {
            // A withdrawal of everything must see every deposit so far.
            let balance = k.state::<Account>("racy").await?.balance;
            assert_eq!(balance, expected);
        }
    }
    let events = store.read_stream(&stream("racy"), 1, 10_000).await?;
    assert_eq!(events.len() as u64, expected);
    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=expected).collect::<Vec<_>>());
    let all = k
        .dispatch::<Account>("racy", AccountCommand::Withdraw(expected))
        .await?;
    assert_eq!(all.version, expected + 1);
    Ok(())
}

#[tokio::test]
async fn a_panic_is_isolated_and_the_next_command_rehydrates() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    k.dispatch::<Account>("x", AccountCommand::Deposit(10))
        .await?;
    match k
        .dispatch::<Account>("x", AccountCommand::PanicInHandle)
        .await
    {
        Err(DispatchError::Panicked(message)) => assert!(message.contains("handle exploded")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    match k.dispatch::<Account>("x", AccountCommand::Curse).await {
        Err(DispatchError::Panicked(message)) => assert!(message.contains("apply exploded")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(
        store.head_position().await?,
        1,
        "a panicking command writes nothing"
    );
    // Other aggregates are unaffected, and this one recovers from the store.
    k.dispatch::<Account>("y", AccountCommand::Deposit(1))
        .await?;
    let done = k
        .dispatch::<Account>("x", AccountCommand::Deposit(5))
        .await?;
    assert_eq!(done.version, 2);
    let state = k.state::<Account>("x").await?;
    assert_eq!(state.balance, 15);
    assert_eq!(
        state.applied, 2,
        "the recovered state was rebuilt from the store"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_a_batch_only_fails_its_own_command() -> Result {
    let k = kernel(MemoryStore::new());
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = if i % 10 == 5 {
                AccountCommand::PanicInHandle
            } else {
                AccountCommand::Deposit(1)
            };
            (i, k.dispatch::<Account>("batchy", cmd).await)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (i, result) = t.await?;
        match result {
            Ok(_) => ok += 1,
            Err(DispatchError::Panicked(_)) => assert_eq!(i % 10, 5),
            Err(e) => panic!("command {i} failed: {e}"),
        }
    }
    assert_eq!(ok, 36);
    assert_eq!(k.state::<Account>("batchy").await?.balance, 36);
    Ok(())
}

#[tokio::test]
async fn snapshots_are_taken_at_multiples_and_used_on_restart() -> Result {
    let store = FlakyStore::default();
    let k = Kernel::builder()
        .store(store.clone())
        .snapshot_every(10)
        .register::<Account>()
        .build()?;
    for _ in 0..25 {
        k.dispatch::<Account>("s", AccountCommand::Deposit(2))
            .await?;
    }
    k.shutdown().await;
    let latest = SnapshotStore::load_latest(&store, &stream("s")).await?;
    assert_eq!(latest.map(|s| s.version), Some(20));
    let k2 = Kernel::builder()
        .store(store.clone())
        .snapshot_every(10)
        .register::<Account>()
        .build()?;
    let before = store.stream_events_read.load(Ordering::SeqCst);
    let state = k2.state::<Account>("s").await?;
    assert_eq!(state.balance, 50);
    assert_eq!(
        store.stream_events_read.load(Ordering::SeqCst) - before,
        5,
        "only the events after the snapshot are replayed"
    );
    Ok(())
}

#[tokio::test]
async fn a_snapshot_that_no_longer_decodes_is_ignored() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    for _ in 0..3 {
        k.dispatch::<Account>("s", AccountCommand::Deposit(1))
            .await?;
    }
    k.shutdown().await;
    let bad = es_core::Snapshot::new(stream("s"), 2, b"{\"not\":\"an account\"".to_vec());
    SnapshotStore::save(&store, bad).await?;
    let k2 = kernel(store);
    assert_eq!(k2.state::<Account>("s").await?.balance, 3);
    Ok(())
}

#[tokio::test]
async fn expected_version_conflicts_are_reported() -> Result {
    let k = kernel(MemoryStore::new());
    k.dispatch::<Account>("c", AccountCommand::Deposit(1))
        .await?;
    let ok = k
        .dispatch_with::<Account>(
            "c",
            AccountCommand::Deposit(1),
            DispatchOptions::default().expected_version(1),
        )
        .await?;
    assert_eq!(ok.version, 2);
    match k
        .dispatch_with::<Account>(
            "c",
            AccountCommand::Deposit(1),
            DispatchOptions::default().expected_version(1),
        )
        .await
    {
        Err(DispatchError::Conflict { expected, actual }) => assert_eq!((expected, actual), (1, 2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(k.state::<Account>("c").await?.balance, 2);
    Ok(())
}

#[tokio::test]
async fn a_writer_behind_the_kernels_back_is_caught_up_with() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    k.dispatch::<Account>("o", AccountCommand::Deposit(10))
        .await?;
    // Another node appends to the same stream.
    let other = NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec());
    store
        .append(&stream("o"), ExpectedVersion::Exact(1), vec![other])
        .await?;
    // The actor's state is stale; its append conflicts, it catches up and re-runs.
    let done = k
        .dispatch::<Account>("o", AccountCommand::Withdraw(15))
        .await?;
    assert_eq!(done.version, 3);
    assert_eq!(k.state::<Account>("o").await?.balance, 0);
    // A rejection decided on stale state is re-checked too.
    let other = NewEvent::new("Deposited", br#"{"amount":7}"#.to_vec());
    store
        .append(&stream("o"), ExpectedVersion::Exact(3), vec![other])
        .await?;
    let done = k
        .dispatch::<Account>("o", AccountCommand::Withdraw(7))
        .await?;
    assert_eq!(done.version, 5);
    Ok(())
}

#[tokio::test]
async fn metadata_and_command_id_are_recorded() -> Result {
    let k = kernel(MemoryStore::new());
    let done = k
        .dispatch_with::<Account>(
            "m",
            AccountCommand::Split(1, 2),
            DispatchOptions::default()
                .metadata("correlation_id", "corr-1")
                .command_id("cmd-9"),
        )
        .await?;
    for e in &done.events {
        assert_eq!(e.metadata["correlation_id"], "corr-1");
        assert_eq!(e.command_id(), Some("cmd-9"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_with_commands_in_flight_answers_everyone() -> Result {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            k.dispatch::<Account>(format!("sd-{}", i % 7), AccountCommand::Deposit(1))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    tokio::time::timeout(Duration::from_secs(10), k.shutdown()).await?;
    let mut committed = 0u64;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t).await?? {
            Ok(_) => committed += 1,
            Err(DispatchError::Shutdown) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(
        store.head_position().await?,
        committed,
        "every acknowledged command was written"
    );
    assert_eq!(k.live_aggregates(), 0);
    assert!(matches!(
        k.dispatch::<Account>("late", AccountCommand::Deposit(1))
            .await,
        Err(DispatchError::Shutdown)
    ));
    Ok(())
}

#[tokio::test]
async fn a_failing_store_gives_store_errors_and_the_aggregate_recovers() -> Result {
    let store = FlakyStore::default();
    let k = kernel(store.clone());
    k.dispatch::<Account>("f", AccountCommand::Deposit(10))
        .await?;
    store.fail_appends.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        match k.dispatch::<Account>("f", AccountCommand::Deposit(1)).await {
            Err(DispatchError::Store(e)) => assert!(e.to_string().contains("disk unplugged")),
            other => panic!("expected a store error, got {other:?}"),
        }
    }
    store.fail_appends.store(false, Ordering::SeqCst);
    let done = k
        .dispatch::<Account>("f", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.version, 2);
    assert_eq!(
        k.state::<Account>("f").await?.balance,
        11,
        "failed commands left no trace"
    );
    Ok(())
}

#[tokio::test]
async fn a_briefly_unavailable_store_is_retried() -> Result {
    let store = FlakyStore::default();
    let k = kernel(store.clone());
    k.dispatch::<Account>("u", AccountCommand::Deposit(1))
        .await?;
    store.fail_next.store(2, Ordering::SeqCst);
    let done = k
        .dispatch::<Account>("u", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.version, 2, "the write went through after two refusals");
    assert_eq!(store.fail_next.load(Ordering::SeqCst), 0);
    let k = Kernel::builder()
        .store(store.clone())
        .store_retries(0)
        .register::<Account>()
        .build()?;
    store.fail_next.store(1, Ordering::SeqCst);
    assert!(matches!(
        k.dispatch::<Account>("u", AccountCommand::Deposit(1)).await,
        Err(DispatchError::Store(StoreError::Unavailable(_)))
    ));
    assert_eq!(k.state::<Account>("u").await?.balance, 2);
    Ok(())
}

#[tokio::test]
async fn unregistered_types_and_unknown_ids() -> Result {
    let k = Kernel::builder().store(MemoryStore::new()).build()?;
    assert!(matches!(
        k.dispatch::<Account>("a", AccountCommand::Deposit(1)).await,
        Err(DispatchError::NotRegistered)
    ));
    let k = kernel(MemoryStore::new());
    assert_eq!(k.state::<Account>("nobody").await?, Account::default());
    Ok(())
}

#[tokio::test]
async fn builder_errors_are_clear() {
    let err = Kernel::builder()
        .register::<Account>()
        .build()
        .map(|_| ())
        .err();
    assert_eq!(err, Some(BuildError::MissingEventStore));
    let err = Kernel::builder()
        .store(MemoryStore::new())
        .register::<Account>()
        .register::<Account>()
        .build()
        .map(|_| ())
        .err();
    assert_eq!(err, None, "registering the same type twice is harmless");
}

#[test]
fn build_outside_a_runtime_is_an_error() {
    let err = Kernel::builder()
        .store(MemoryStore::new())
        .build()
        .map(|_| ())
        .err();
    assert_eq!(err, Some(BuildError::NoRuntime));
}

/// Panics in `Default` while `FRAGILE_PANICS` is set: a panic the actor cannot catch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Fragile {
    balance: u64,
}

static FRAGILE_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Default for Fragile {
    fn default() -> Self {
        assert!(!FRAGILE_PANICS.load(Ordering::SeqCst), "default exploded");
        Self { balance: 0 }
    }
}

impl Aggregate for Fragile {
    const TYPE: &'static str = "fragile";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    fn handle(
        &self,
        command: AccountCommand,
    ) -> std::result::Result<Vec<AccountEvent>, AccountError> {
        Account {
            balance: self.balance,
            applied: 0,
        }
        .handle(command)
    }
    fn apply(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited(e) = event {
            self.balance += e.amount;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_the_actor_cannot_catch_still_answers_and_frees_the_aggregate() -> Result {
    let k = Kernel::builder()
        .store(MemoryStore::new())
        .register::<Fragile>()
        .build()?;
    k.dispatch::<Fragile>("f", AccountCommand::Deposit(5))
        .await?;
    // A fresh kernel on the same events: the next command rehydrates (and calls `Default`).
    k.shutdown().await;
    let store = k.event_store().clone();
    drop(k);
    let k = Kernel::builder()
        .event_store(store)
        .register::<Fragile>()
        .build()?;
    FRAGILE_PANICS.store(true, Ordering::SeqCst);
    let wait = Duration::from_secs(10);
    let failed = tokio::time::timeout(wait, k.dispatch::<Fragile>("f", AccountCommand::Deposit(1)))
        .await
        .expect("the dispatcher of the panicking batch was answered");
    assert!(
        matches!(failed, Err(DispatchError::Panicked(_))),
        "got {failed:?}"
    );
    FRAGILE_PANICS.store(false, Ordering::SeqCst);
    let done = tokio::time::timeout(wait, k.dispatch::<Fragile>("f", AccountCommand::Deposit(1)))
        .await
        .expect("the aggregate is not stuck behind the dead actor")?;
    assert_eq!(done.version, 2);
    assert_eq!(k.state::<Fragile>("f").await?.balance, 6);
    tokio::time::timeout(wait, k.shutdown()).await?;
    assert_eq!(k.live_aggregates(), 0);
    Ok(())
}
