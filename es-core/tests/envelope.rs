//! The event envelope, the injected clock and idempotent commands, through the public API on
//! the memory store (the durable stores run the same rules in the workspace's `tests` crate).
#![allow(clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::*;
use es_core::clock::ManualClock;
use es_core::prelude::*;
use es_core::store::StoreError;
use es_core::{Kernel, SnapshotStore};
use serde_json::json;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn kernel(store: &MemoryStore) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .register::<Account>()
        .build()
        .expect("kernel builds")
}

fn with_id(id: &str) -> DispatchOptions {
    DispatchOptions::default().command_id(id)
}

#[tokio::test]
async fn dispatch_with_records_the_whole_envelope_on_every_event() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let opts = DispatchOptions::default()
        .command_id("cmd-7")
        .correlation_id("order-42")
        .causation_id("evt-3")
        .tag("vip")
        .tag("eu")
        .metadata("ip", "10.0.0.1")
        .metadata("attempt", 3)
        .metadata("caller", json!({"user": "ann", "roles": ["teller"]}));
    let done = k
        .dispatch_with::<Account>("acc-1", AccountCommand::Split(1, 2), opts)
        .await?;
    let stored = store.read_stream(&stream("acc-1"), 1, 10).await?;
    assert_eq!(done.events, stored, "the answer is what the store keeps");
    assert_eq!(done.events.len(), 2);
    for e in &done.events {
        assert_eq!(e.command_id(), Some("cmd-7"));
        assert_eq!(e.correlation_id(), Some("order-42"));
        assert_eq!(e.causation_id(), Some("evt-3"));
        assert_eq!(e.tags(), ["vip".to_string(), "eu".to_string()]);
        assert_eq!(e.metadata["ip"], json!("10.0.0.1"));
        assert_eq!(e.metadata["attempt"], json!(3));
        assert_eq!(e.metadata["caller"]["roles"][0], json!("teller"));
    }
    let typed = Recorded::<AccountEvent>::decode(&done.events[0])?;
    assert_eq!(typed.command_id(), Some("cmd-7"));
    assert_eq!(typed.correlation_id(), Some("order-42"));
    assert_eq!(typed.causation_id(), Some("evt-3"));
    assert_eq!(typed.tags(), ["vip".to_string(), "eu".to_string()]);
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_options_the_command_id_is_a_fresh_uuid_v7_and_the_others_follow_it() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let a = k
        .dispatch::<Account>("a", AccountCommand::Split(1, 1))
        .await?;
    let b = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    let id = a.events[0]
        .command_id()
        .expect("a command id is always recorded");
    assert_eq!(uuid::Uuid::parse_str(id)?.get_version_num(), 7);
    assert_eq!(
        a.events[1].command_id(),
        Some(id),
        "one id for the whole command"
    );
    assert_eq!(a.events[0].correlation_id(), Some(id));
    assert_eq!(a.events[0].causation_id(), Some(id));
    assert_ne!(
        b.events[0].command_id(),
        Some(id),
        "each command gets its own"
    );
    assert!(a.events[0].tags().is_empty() && a.events[0].metadata.is_empty());
    // Given a command id only, correlation and causation follow it.
    let c = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("c-1"))
        .await?;
    assert_eq!(c.events[0].correlation_id(), Some("c-1"));
    assert_eq!(c.events[0].causation_id(), Some("c-1"));
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_kernel_stamps_events_and_snapshots_with_its_clock() -> Result {
    let store = MemoryStore::new();
    let start = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let clock = ManualClock::new(start);
    let k = Kernel::builder()
        .store(store.clone())
        .clock(clock.clone())
        .snapshot_every(2)
        .register::<Account>()
        .build()?;
    let first = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(first.events[0].timestamp, start);
    clock.advance(Duration::from_secs(90));
    let second = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    let later = start + chrono::Duration::seconds(90);
    assert_eq!(second.events[0].timestamp, later);
    let stored = store.read_stream(&stream("a"), 1, 10).await?;
    assert_eq!(
        stored.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
        [start, later]
    );
    // The snapshot written after version 2 carries the clock's time too.
    let snapshot = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(s) = store.load_latest(&stream("a")).await? {
                return Ok::<_, StoreError>(s);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await??;
    assert_eq!(snapshot.timestamp, later);
    clock.set(start);
    let third = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(
        third.events[0].timestamp, start,
        "set() may move the clock back"
    );
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_repeated_command_id_gets_the_first_answer_without_running_again() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Account>("a", AccountCommand::Deposit(10))
        .await?;
    let first = k
        .dispatch_with::<Account>("a", AccountCommand::Split(1, 2), with_id("pay-1"))
        .await?;
    k.dispatch::<Account>("a", AccountCommand::Deposit(100))
        .await?;
    let head = store.head_position().await?;
    // The same id with another command (or another expected version): still the first answer.
    let again = k
        .dispatch_with::<Account>(
            "a",
            AccountCommand::Withdraw(5),
            with_id("pay-1").expected_version(0),
        )
        .await?;
    assert_eq!(again, first, "same version, same events, same positions");
    assert_eq!(again.version, 3);
    assert_eq!(
        store.head_position().await?,
        head,
        "nothing new was written"
    );
    assert_eq!(k.state::<Account>("a").await?.balance, 113);
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_window_survives_passivation_and_a_kernel_restart() -> Result {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store.clone())
        .passivate_after(Duration::from_millis(50))
        .register::<Account>()
        .build()?;
    let first = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(7), with_id("once"))
        .await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while k.live_aggregates() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    let after_passivation = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(7), with_id("once"))
        .await?;
    assert_eq!(after_passivation, first);
    k.shutdown().await;

    let restarted = kernel(&store);
    let after_restart = restarted
        .dispatch_with::<Account>("a", AccountCommand::Deposit(7), with_id("once"))
        .await?;
    assert_eq!(after_restart, first);
    assert_eq!(store.stream_version(&stream("a")).await?, 1);
    restarted.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_rejected_command_id_can_run_again() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let refused = k
        .dispatch_with::<Account>("a", AccountCommand::Withdraw(5), with_id("w-1"))
        .await;
    assert!(
        matches!(refused, Err(DispatchError::Rejected(_))),
        "{refused:?}"
    );
    k.dispatch::<Account>("a", AccountCommand::Deposit(10))
        .await?;
    let retried = k
        .dispatch_with::<Account>("a", AccountCommand::Withdraw(5), with_id("w-1"))
        .await?;
    assert_eq!(retried.version, 2);
    assert_eq!(k.state::<Account>("a").await?.balance, 5);
    // A command that was accepted but wrote nothing recorded nothing either.
    let touched = k
        .dispatch_with::<Account>("a", AccountCommand::Touch, with_id("t"))
        .await?;
    assert!(touched.events.is_empty());
    let deposit = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("t"))
        .await?;
    assert_eq!(deposit.version, 3, "the id of an empty command is free");
    k.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_command_commit_once() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    for round in 0..20 {
        let id = format!("copy-{round}");
        let copies: Vec<_> = (0..16)
            .map(|_| {
                let (k, id) = (k.clone(), id.clone());
                tokio::spawn(async move {
                    k.dispatch_with::<Account>("a", AccountCommand::Split(1, 1), with_id(&id))
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for copy in copies {
            answers.push(copy.await??);
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "round {round}: every copy gets the same answer"
        );
    }
    assert_eq!(
        store.stream_version(&stream("a")).await?,
        40,
        "20 commands of 2 events"
    );
    assert_eq!(k.state::<Account>("a").await?.balance, 40);
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ids_older_than_the_window_run_again_and_a_zero_window_turns_it_off() -> Result {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store.clone())
        .dedup_window(2)
        .register::<Account>()
        .build()?;
    for id in ["x", "y", "z"] {
        k.dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id(id))
            .await?;
    }
    let y = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("y"))
        .await?;
    assert_eq!(y.version, 2, "y is within the last 2 commands");
    let x = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("x"))
        .await?;
    assert_eq!(x.version, 4, "x fell out of the window and ran again");
    k.shutdown().await;
    // A fresh kernel rebuilds the window from the stream: its last 2 commands are z and x.
    let k = Kernel::builder()
        .store(store.clone())
        .dedup_window(2)
        .register::<Account>()
        .build()?;
    let z = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("z"))
        .await?;
    assert_eq!(z.version, 3);
    let y = k
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("y"))
        .await?;
    assert_eq!(y.version, 5, "y is no longer among the last 2");
    k.shutdown().await;

    let off = Kernel::builder()
        .store(store.clone())
        .dedup_window(0)
        .register::<Account>()
        .build()?;
    let again = off
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("y"))
        .await?;
    assert_eq!(again.version, 6, "with the window off, every command runs");
    off.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn another_node_retrying_the_same_id_gets_the_first_answer() -> Result {
    // Two kernels on one store stand for two nodes sharing a database.
    let store = MemoryStore::new();
    let (node1, node2) = (kernel(&store), kernel(&store));
    // node2's actor is live, at version 1, with its window built.
    node2
        .dispatch_with::<Account>("a", AccountCommand::Deposit(1), with_id("warm-up"))
        .await?;
    let first = node1
        .dispatch_with::<Account>("a", AccountCommand::Split(2, 3), with_id("pay"))
        .await?;
    let retry = node2
        .dispatch_with::<Account>("a", AccountCommand::Split(2, 3), with_id("pay"))
        .await?;
    assert_eq!(
        retry, first,
        "the stale node caught up and answered from the window"
    );
    assert_eq!(store.stream_version(&stream("a")).await?, 3);
    assert_eq!(node2.state::<Account>("a").await?.balance, 6);
    node1.shutdown().await;
    node2.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_long_stream_with_snapshots_still_finds_old_ids_within_the_window() -> Result {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store.clone())
        .snapshot_every(50)
        .register::<Account>()
        .build()?;
    let early = k
        .dispatch_with::<Account>("a", AccountCommand::Split(1, 1), with_id("early"))
        .await?;
    for _ in 0..300 {
        k.dispatch::<Account>("a", AccountCommand::Deposit(1))
            .await?;
    }
    k.shutdown().await;
    let k = kernel(&store);
    let again = k
        .dispatch_with::<Account>("a", AccountCommand::Split(1, 1), with_id("early"))
        .await?;
    assert_eq!(
        again, early,
        "301 commands back is within the default window of 1,000"
    );
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_ids_tags_and_metadata_are_refused_before_anything_runs() -> Result {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let too_long = "x".repeat(NewEvent::MAX_ID_LEN + 1);
    let cases = [
        (
            "empty command id",
            DispatchOptions::default().command_id(""),
        ),
        (
            "long command id",
            DispatchOptions::default().command_id(too_long.clone()),
        ),
        ("empty tag", DispatchOptions::default().tag("")),
        (
            "long correlation id",
            DispatchOptions::default().correlation_id(too_long),
        ),
        (
            "NUL in metadata",
            DispatchOptions::default().metadata("k", "a\0b"),
        ),
    ];
    for (what, opts) in cases {
        match k
            .dispatch_with::<Account>("a", AccountCommand::Deposit(1), opts)
            .await
        {
            Err(DispatchError::Store(StoreError::InvalidInput(message))) => {
                assert!(
                    message.contains("envelope") || message.contains("metadata"),
                    "{what}: {message}"
                );
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(store.head_position().await?, 0, "nothing was written");
    // Metadata that cannot be serialized is refused where it is given.
    let map_with_bad_keys = std::collections::BTreeMap::from([(vec![1u8], 1)]);
    let refused = DispatchOptions::default().try_metadata("bad", &map_with_bad_keys);
    assert!(matches!(refused, Err(StoreError::InvalidInput(m)) if m.contains("\"bad\"")));
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_clock_shared_as_an_arc_works_too() -> Result {
    let start = Utc
        .with_ymd_and_hms(2030, 6, 1, 12, 0, 0)
        .single()
        .expect("valid date");
    let clock: Arc<dyn es_core::clock::Clock> = Arc::new(ManualClock::new(start));
    let k = Kernel::builder()
        .store(MemoryStore::new())
        .clock(clock)
        .register::<Account>()
        .build()?;
    let done = k
        .dispatch::<Account>("a", AccountCommand::Deposit(1))
        .await?;
    assert_eq!(done.events[0].timestamp, start);
    k.shutdown().await;
    Ok(())
}
