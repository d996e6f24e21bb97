//! The envelope section of the design on a durable store: the whole envelope, the kernel's
//! clock and idempotent commands, across a kernel restart on a freshly opened store.

use chrono::{TimeZone, Utc};
use es_core::clock::{Clock, ManualClock};
use es_core::prelude::*;
use es_examples::bank::{BankAccount, Deposit, Withdraw};

use super::Error;

/// Runs the envelope contract. `open` opens the same durable store again each time it is
/// called (the previous handle has been dropped by then).
pub async fn envelope_contract<S, F, Fut>(open: F) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<S, Error>>,
{
    let start = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .ok_or("valid date")?
        + chrono::Duration::nanoseconds(123_456_789);
    let clock = ManualClock::new(start);
    let (first, retry_opts) = {
        let store = open().await?;
        let kernel = Kernel::builder()
            .store(store.clone())
            .clock(clock.clone())
            .snapshot_every(2)
            .register::<BankAccount>()
            .build()?;
        kernel
            .dispatch::<BankAccount>("acc-1", Deposit { amount: 100 })
            .await?;
        clock.advance(std::time::Duration::from_millis(1500));
        // The design's example, verbatim.
        let opts = DispatchOptions::default()
            .command_id("cmd-7")
            .correlation_id("order-42")
            .causation_id("evt-3")
            .tag("vip")
            .metadata("ip", "10.0.0.1")
            .metadata("attempt", 3)
            .expected_version(1);
        let done = kernel
            .dispatch_with::<BankAccount>("acc-1", Deposit { amount: 5 }, opts.clone())
            .await?;
        let e: &RecordedEvent = &done.events[0];
        assert_eq!(e.command_id(), Some("cmd-7"));
        assert_eq!(e.correlation_id(), Some("order-42"));
        assert_eq!(e.causation_id(), Some("evt-3"));
        assert_eq!(e.tags(), ["vip".to_string()]);
        assert_eq!(e.metadata["ip"], serde_json::json!("10.0.0.1"));
        assert_eq!(e.metadata["attempt"], serde_json::json!(3));
        assert_eq!(e.timestamp, clock.now(), "stamped by the kernel's clock");
        let stored = store.read_stream(&e.stream, 1, 10).await?;
        assert_eq!(
            stored.last(),
            Some(e),
            "the store keeps the envelope exactly"
        );
        // A retry within the same kernel is answered from the window.
        let again = kernel
            .dispatch_with::<BankAccount>("acc-1", Deposit { amount: 5 }, opts.clone())
            .await?;
        assert_eq!(again, done);
        kernel.shutdown().await;
        (done, opts)
    };
    // A fresh process: the store is opened again, the kernel has never seen the command.
    let store = open().await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .clock(clock.clone())
        .register::<BankAccount>()
        .build()?;
    let after_restart = kernel
        .dispatch_with::<BankAccount>("acc-1", Deposit { amount: 5 }, retry_opts)
        .await?;
    assert_eq!(
        after_restart, first,
        "same version, events, positions and timestamps"
    );
    assert_eq!(kernel.state::<BankAccount>("acc-1").await?.balance, 105);
    let snapshot = store
        .load_latest(&StreamId::new("bank_account", "acc-1"))
        .await?
        .ok_or("a snapshot at version 2")?;
    assert_eq!(
        snapshot.timestamp,
        clock.now(),
        "snapshots carry the clock's time"
    );
    // A rejected id runs again once the rule allows it.
    let take = DispatchOptions::default().command_id("take-1");
    let refused = kernel
        .dispatch_with::<BankAccount>("acc-1", Withdraw { amount: 500 }, take.clone())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    kernel
        .dispatch::<BankAccount>("acc-1", Deposit { amount: 400 })
        .await?;
    let taken = kernel
        .dispatch_with::<BankAccount>("acc-1", Withdraw { amount: 500 }, take)
        .await?;
    assert_eq!(taken.version, 4);
    kernel.shutdown().await;
    Ok(())
}
