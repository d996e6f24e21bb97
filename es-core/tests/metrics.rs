//! Every metric of `es_core::metrics` moves when its event happens, seen through a recording
//! test recorder, and `Kernel::stats()` agrees.
//!
//! The recorder is `metrics-util`'s registry with atomic storage, read without resetting
//! anything (its `DebuggingRecorder` zeroes counters and gauges on each snapshot, which would
//! garble a gauge that goes up and down). Each test has a recorder of its own, made the
//! thread's local recorder while the kernel is built and runners are started: that is when
//! the handles are taken, and every update made later, on any worker thread, goes through
//! them. So the tests do not see each other's figures, and the multi-threaded ones show that a
//! local recorder reaches the actors' threads.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::recorder::Rec;
use common::*;
use es_core::metrics::{self as m, KernelStats};
use es_core::prelude::*;
use es_core::projection::{ErrorPolicy, ProjectionError};
use es_core::{Kernel, Snapshot, SnapshotStore};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn account_stats(stats: &KernelStats) -> &es_core::metrics::AggregateStats {
    stats
        .aggregates
        .iter()
        .find(|a| a.aggregate == "account")
        .expect("account is registered")
}

/// Polls `done` every 10 ms for up to 5 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_has_its_counter_and_batches_are_measured() -> Result {
    let rec = Rec::new();
    let store = FlakyStore::default();
    let k = rec.build(
        Kernel::builder()
            .event_store(store.clone())
            .store_retries(0)
            .register::<Account>(),
    );
    let outcome = |o: &str| format!("es_commands_total{{aggregate=account,outcome={o}}}");
    for name in [
        "ok",
        "rejected",
        "conflict",
        "store_error",
        "panicked",
        "shutdown",
    ] {
        assert_eq!(rec.counter(&outcome(name)), 0, "{name} starts at 0");
    }

    k.dispatch::<Account>("a", AccountCommand::Deposit(10))
        .await?;
    k.dispatch::<Account>("a", AccountCommand::Touch).await?;
    assert_eq!(rec.counter(&outcome("ok")), 2);

    let rejected = k
        .dispatch::<Account>("a", AccountCommand::Withdraw(100))
        .await;
    assert!(matches!(rejected, Err(DispatchError::Rejected(_))));
    assert_eq!(rec.counter(&outcome("rejected")), 1);

    let stale = k
        .dispatch_with::<Account>(
            "a",
            AccountCommand::Deposit(1),
            DispatchOptions::default().expected_version(0),
        )
        .await;
    assert!(matches!(stale, Err(DispatchError::Conflict { .. })));
    assert_eq!(rec.counter(&outcome("conflict")), 1);

    store.fail_appends.store(true, Ordering::SeqCst);
    let failed = k.dispatch::<Account>("a", AccountCommand::Deposit(1)).await;
    assert!(matches!(failed, Err(DispatchError::Store(_))), "{failed:?}");
    assert_eq!(rec.counter(&outcome("store_error")), 1);
    store.fail_appends.store(false, Ordering::SeqCst);

    let panicked = k
        .dispatch::<Account>("a", AccountCommand::PanicInHandle)
        .await;
    assert!(matches!(panicked, Err(DispatchError::Panicked(_))));
    assert_eq!(rec.counter(&outcome("panicked")), 1);

    // Every batch so far held one command; the ones that committed were timed.
    let sizes = rec.histogram("es_batch_size{aggregate=account}");
    assert_eq!(sizes, vec![1.0; 6]);
    let times = rec.histogram("es_commit_seconds{aggregate=account}");
    assert_eq!(times.len(), 4, "ok, ok, rejected and conflict committed");
    assert!(times.iter().all(|t| *t > 0.0 && *t < 5.0), "{times:?}");

    k.shutdown().await;
    let late = k.dispatch::<Account>("a", AccountCommand::Deposit(1)).await;
    assert!(matches!(late, Err(DispatchError::Shutdown)));
    assert_eq!(rec.counter(&outcome("shutdown")), 1);

    let stats = k.stats();
    let account = account_stats(&stats);
    assert_eq!(
        (
            account.commands.ok,
            account.commands.rejected,
            account.commands.conflict,
            account.commands.store_error,
            account.commands.panicked,
            account.commands.shutdown
        ),
        (2, 1, 1, 1, 1, 1)
    );
    assert_eq!((account.batches, account.batched_commands), (6, 6));
    assert!(account.commit_time > Duration::ZERO);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_on_one_aggregate_are_one_batch() -> Result {
    let rec = Rec::new();
    let k = rec.build(
        Kernel::builder()
            .store(MemoryStore::new())
            .register::<Account>(),
    );
    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    let sent: Vec<_> = (0..50)
        .map(|_| {
            let k = k.clone();
            tokio::spawn(
                async move { k.dispatch::<Account>("a", AccountCommand::Deposit(1)).await },
            )
        })
        .collect();
    for task in sent {
        task.await??;
    }
    let sizes = rec.histogram("es_batch_size{aggregate=account}");
    assert_eq!(
        sizes.iter().sum::<f64>(),
        51.0,
        "every command is in a batch"
    );
    let stats = k.stats();
    assert_eq!(account_stats(&stats).batched_commands, 51);
    assert_eq!(account_stats(&stats).batches, sizes.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_with_another_writer_counts_a_rerun() -> Result {
    let rec = Rec::new();
    let store = MemoryStore::new();
    let k = rec.build(Kernel::builder().store(store.clone()).register::<Account>());
    k.dispatch::<Account>("o", AccountCommand::Deposit(10))
        .await?;
    assert_eq!(
        rec.counter("es_conflict_reruns_total{aggregate=account}"),
        0
    );
    let other = NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec());
    store
        .append(&stream("o"), ExpectedVersion::Exact(1), vec![other])
        .await?;
    let done = k
        .dispatch::<Account>("o", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.version, 3);
    assert_eq!(
        rec.counter("es_conflict_reruns_total{aggregate=account}"),
        1
    );
    assert_eq!(
        rec.counter("es_commands_total{aggregate=account,outcome=ok}"),
        2,
        "the re-run command succeeded"
    );
    assert_eq!(account_stats(&k.stats()).conflict_reruns, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_live_gauge_rehydration_and_replayed_events() -> Result {
    let rec = Rec::new();
    let store = MemoryStore::new();
    let k = rec.build(
        Kernel::builder()
            .event_store(store.clone())
            .passivate_after(Duration::from_millis(50))
            .register::<Account>(),
    );
    let live = "es_live_aggregates{aggregate=account}";
    assert_eq!(rec.gauge(live), 0.0);
    for _ in 0..3 {
        k.dispatch::<Account>("a", AccountCommand::Deposit(1))
            .await?;
    }
    k.dispatch::<Account>("b", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(rec.gauge(live), 2.0);
    assert_eq!(account_stats(&k.stats()).live, 2);
    assert_eq!(rec.counter("es_rehydrations_total{aggregate=account}"), 2);
    assert_eq!(
        rec.counter("es_events_replayed_total{aggregate=account}"),
        0
    );
    assert_eq!(rec.counter("es_passivations_total{aggregate=account}"), 0);

    eventually("both actors are passivated", || k.live_aggregates() == 0).await;
    assert_eq!(rec.counter("es_passivations_total{aggregate=account}"), 2);
    assert_eq!(rec.gauge(live), 0.0);

    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(rec.gauge(live), 1.0);
    assert_eq!(rec.counter("es_rehydrations_total{aggregate=account}"), 3);
    assert_eq!(
        rec.counter("es_events_replayed_total{aggregate=account}"),
        3,
        "a's three events were replayed"
    );
    // No snapshot store: rehydrations are neither hits nor misses.
    assert_eq!(
        rec.counter("es_snapshot_misses_total{aggregate=account}"),
        0
    );
    let stats = k.stats();
    let account = account_stats(&stats);
    assert_eq!(
        (
            account.passivations,
            account.rehydrations,
            account.events_replayed
        ),
        (2, 3, 3)
    );
    assert_eq!(stats.live_aggregates, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_hits_misses_and_discarded_snapshots() -> Result {
    let rec = Rec::new();
    let store = MemoryStore::new();
    let k = rec.build(
        Kernel::builder()
            .store(store.clone())
            .snapshot_every(2)
            .passivate_after(Duration::from_millis(50))
            .register::<Account>(),
    );
    let hits = "es_snapshot_hits_total{aggregate=account}";
    let misses = "es_snapshot_misses_total{aggregate=account}";
    let discarded = "es_snapshots_discarded_total{aggregate=account}";
    for _ in 0..3 {
        k.dispatch::<Account>("a", AccountCommand::Deposit(1))
            .await?;
    }
    assert_eq!((rec.counter(hits), rec.counter(misses)), (0, 1));
    // The snapshot at version 2 is written off the reply path.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.load_latest(&stream("a")).await?.is_none() {
        assert!(Instant::now() < deadline, "no snapshot written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually("a is passivated", || k.live_aggregates() == 0).await;
    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    assert_eq!((rec.counter(hits), rec.counter(misses)), (1, 1));
    assert_eq!(
        rec.counter("es_events_replayed_total{aggregate=account}"),
        1,
        "only the event after the snapshot was replayed"
    );

    // A snapshot that no longer decodes is discarded and the stream replayed.
    store
        .append(
            &stream("b"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())],
        )
        .await?;
    SnapshotStore::save(&store, Snapshot::new(stream("b"), 1, b"not json".to_vec())).await?;
    assert_eq!(rec.counter(discarded), 0);
    let done = k
        .dispatch::<Account>("b", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.version, 2);
    assert_eq!(rec.counter(discarded), 1);
    let stats = k.stats();
    let account = account_stats(&stats);
    assert_eq!(
        (
            account.snapshot_hits,
            account.snapshot_misses,
            account.snapshots_discarded
        ),
        (1, 1, 1)
    );
    Ok(())
}

/// Counts deposits; withdrawals are filtered out; a deposit of 13 fails.
#[derive(Debug, Default, Clone)]
struct Deposits {
    total: u64,
}

impl Projection for Deposits {
    const NAME: &'static str = "deposits";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, event: &RecordedEvent) -> std::result::Result<(), ProjectionError> {
        let amount = Recorded::<Deposited>::decode(event)?.payload.amount;
        if amount == 13 {
            return Err(ProjectionError::State("13 is unlucky".to_owned()));
        }
        self.total += amount;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_gauge_follows_parking_skipping_and_retrying() -> Result {
    let rec = Rec::new();
    let store = MemoryStore::new();
    let k = rec.build(Kernel::builder().store(store.clone()).register::<Account>());
    let options = ProjectionOptions::default().error_policy(ErrorPolicy::park());
    let handle = rec.with(k.projections().start::<Deposits>(options)).await?;
    let gauge = "es_dead_letters{projection=deposits}";
    k.dispatch::<Account>("a", AccountCommand::Deposit(13))
        .await?;
    k.dispatch::<Account>("a", AccountCommand::Deposit(2))
        .await?;
    let last = k
        .dispatch::<Account>("b", AccountCommand::Deposit(5))
        .await?;
    handle.wait_for(last.events[0].position).await?;
    assert_eq!(rec.gauge(gauge), 2.0, "the 13 and the deposit behind it");
    assert_eq!(handle.state().await.total, 5, "the other stream went on");

    let letters = k.projections().dead_letters("deposits").await?;
    let (key, first) = (letters[0].key.clone(), letters[0].position);
    k.projections()
        .skip("deposits", &key, first, "unlucky")
        .await?;
    assert_eq!(rec.gauge(gauge), 1.0);
    assert_eq!(k.projections().retry("deposits", &key).await?, 1);
    assert_eq!(rec.gauge(gauge), 0.0);
    assert_eq!(handle.state().await.total, 7);
    k.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_lag_handled_filtered_skipped_and_restarts() -> Result {
    let rec = Rec::new();
    let store = MemoryStore::new();
    let k = rec.build(Kernel::builder().store(store.clone()).register::<Account>());
    let options = || ProjectionOptions::default().error_policy(ErrorPolicy::Skip);
    let handle = rec
        .with(k.projections().start::<Deposits>(options()))
        .await?;
    let lag_events = "es_projection_lag_events{projection=deposits}";
    let lag_seconds = "es_projection_lag_seconds{projection=deposits}";
    let handled = "es_projection_events_handled_total{projection=deposits}";
    let filtered = "es_projection_events_skipped_total{projection=deposits,reason=filter}";
    let failed = "es_projection_events_skipped_total{projection=deposits,reason=error}";
    let restarts = "es_projection_restarts_total{projection=deposits}";

    for amount in [1, 2, 13] {
        k.dispatch::<Account>("a", AccountCommand::Deposit(amount))
            .await?;
    }
    let last = k
        .dispatch::<Account>("a", AccountCommand::Withdraw(1))
        .await?;
    handle.wait_for(last.events[0].position).await?;
    assert_eq!(rec.counter(handled), 2);
    assert_eq!(rec.counter(failed), 1, "the deposit of 13 was skipped");
    assert_eq!(rec.counter(filtered), 1, "the withdrawal was filtered out");
    assert_eq!(rec.gauge(lag_events), 0.0);
    assert_eq!(rec.gauge(lag_seconds), 0.0);

    // Stopped, the runner falls behind by exactly the events written since.
    k.projections().stop("deposits").await?;
    for _ in 0..7 {
        k.dispatch::<Account>("b", AccountCommand::Deposit(1))
            .await?;
    }
    let status = k.projections().lookup("deposits").expect("started");
    assert_eq!(status.position, 4);
    assert_eq!(status.lag_events, 7);
    assert_eq!(rec.gauge(lag_events), 7.0);
    // Within a lag refresh the monitor reads the oldest unprocessed event's time.
    eventually("the lag in time is known", || {
        k.projections()
            .lookup("deposits")
            .is_some_and(|s| s.lag > Duration::ZERO)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = k.stats();
    let status = &stats.projections[0];
    assert_eq!(status.name, "deposits");
    assert!(status.lag_seconds() >= 0.02, "{status:?}");
    assert!(status.lag_seconds() < 5.0, "{status:?}");
    assert!(rec.gauge(lag_seconds) > 0.0);
    assert_eq!(
        (
            status.events_handled,
            status.events_filtered,
            status.skipped_count
        ),
        (2, 1, 1)
    );
    assert_eq!(rec.counter(restarts), 0);

    // Started again, it catches up: one restart, no lag.
    let handle = rec
        .with(k.projections().start::<Deposits>(options()))
        .await?;
    handle.wait_for(11).await?;
    assert_eq!(rec.counter(restarts), 1);
    assert_eq!(rec.counter(handled), 9);
    let status = k.projections().lookup("deposits").expect("started");
    assert_eq!((status.lag_events, status.lag), (0, Duration::ZERO));
    assert_eq!(status.restarts, 1);
    assert_eq!(rec.gauge(lag_events), 0.0);
    assert_eq!(rec.gauge(lag_seconds), 0.0);
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_documented_name_is_registered() -> Result {
    let rec = Rec::new();
    let k = rec.build(
        Kernel::builder()
            .store(MemoryStore::new())
            .register::<Account>(),
    );
    rec.with(
        k.projections()
            .start::<Deposits>(ProjectionOptions::default()),
    )
    .await?;
    let ids = rec.ids();
    for name in m::NAMES {
        assert!(
            ids.iter().any(|id| id.starts_with(&format!("{name}{{"))),
            "{name} is not registered: {ids:?}"
        );
    }
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_a_recorder_stats_still_count() -> Result {
    let k = Kernel::builder()
        .store(MemoryStore::new())
        .register::<Account>()
        .build()?;
    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    let _ = k
        .dispatch::<Account>("a", AccountCommand::Withdraw(5))
        .await;
    let stats = k.stats();
    let account = account_stats(&stats);
    assert_eq!((account.commands.ok, account.commands.rejected), (1, 1));
    assert_eq!(account.live, 1);
    assert!(stats.projections.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_runner_reports_growing_lag() -> Result {
    let rec = Rec::new();
    let k = rec.build(
        Kernel::builder()
            .store(MemoryStore::new())
            .register::<Account>(),
    );
    // Retries the deposit of 13 for good: the runner is stuck at position 1.
    let retry = ErrorPolicy::Retry {
        attempts: u32::MAX,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
    };
    let options = ProjectionOptions::default()
        .batch_size(1)
        .error_policy(retry);
    let handle = rec.with(k.projections().start::<Deposits>(options)).await?;
    for amount in [1, 13, 2] {
        k.dispatch::<Account>("a", AccountCommand::Deposit(amount))
            .await?;
    }
    handle.wait_for(1).await?;
    eventually("the runner is stuck on the deposit of 13", || {
        k.projections()
            .lookup("deposits")
            .is_some_and(|s| s.lag > Duration::ZERO)
    })
    .await;
    let before = k.projections().lookup("deposits").expect("started");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = k.projections().lookup("deposits").expect("started");
    assert_eq!((before.position, after.position), (1, 1));
    assert_eq!((before.lag_events, after.lag_events), (2, 2));
    assert!(
        after.lag >= before.lag + Duration::from_millis(100),
        "{before:?} then {after:?}"
    );
    assert!(rec.gauge("es_projection_lag_seconds{projection=deposits}") >= 0.1);
    assert_eq!(
        rec.gauge("es_projection_lag_events{projection=deposits}"),
        2.0
    );
    k.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_in_time_is_measured_with_the_kernels_clock() -> Result {
    use chrono::{TimeZone, Utc};
    use es_core::clock::ManualClock;

    let start = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let clock = ManualClock::new(start);
    let rec = Rec::new();
    let k = rec.build(
        Kernel::builder()
            .store(MemoryStore::new())
            .clock(clock.clone())
            .register::<Account>(),
    );
    let handle = rec
        .with(
            k.projections()
                .start::<Deposits>(ProjectionOptions::default()),
        )
        .await?;
    let done = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    handle.wait_for(done.events[0].position).await?;
    k.projections().stop("deposits").await?;
    // Two events stamped 00:00:00 and 00:00:30; the runner has processed neither.
    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    clock.advance(Duration::from_secs(30));
    k.dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    clock.advance(Duration::from_secs(60));
    eventually("the lag monitor read the oldest unprocessed event", || {
        k.projections()
            .lookup("deposits")
            .is_some_and(|s| s.lag > Duration::ZERO)
    })
    .await;
    let status = k.projections().lookup("deposits").expect("started");
    assert_eq!(status.lag_events, 2);
    assert_eq!(status.lag, Duration::from_secs(90), "{status:?}");
    assert_eq!(
        rec.gauge("es_projection_lag_seconds{projection=deposits}"),
        90.0
    );
    k.shutdown().await;
    Ok(())
}
