//! Reads by stream and of latest snapshots are batched (many callers, one statement): each
//! caller still gets exactly its own answer, and a reader whose connection is cut off answers
//! with an error and then recovers.

use std::time::Duration;

use chrono::Utc;
use es_core::store::{EventStore, ExpectedVersion, Snapshot, SnapshotStore, StoreError};
use tokio::task::JoinSet;

use crate::postgres_common::{ev, s, store, store_alone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_many_streams_each_get_their_own_answer() {
    let (store, _guard) = store("batchread").await;
    // Stream k has k % 7 events (numbered k * 100 + i), and every third one a snapshot at
    // version k % 7 (state "k").
    let streams = 240_u64;
    for k in 0..streams {
        let count = k % 7;
        if count > 0 {
            let events = (1..=count).map(|i| ev(k * 100 + i)).collect();
            store
                .append(&s(&format!("r{k}")), ExpectedVersion::NoStream, events)
                .await
                .unwrap();
        }
        if k % 3 == 0 {
            store
                .save(Snapshot {
                    stream: s(&format!("r{k}")),
                    version: count,
                    state: k.to_string().into_bytes(),
                    timestamp: Utc::now(),
                })
                .await
                .unwrap();
        }
    }
    for _round in 0..3 {
        let mut reads = JoinSet::new();
        for k in 0..streams {
            let store = store.clone();
            reads.spawn(async move {
                let id = s(&format!("r{k}"));
                // Reads from sequence 2 (or 1), with a limit of 3 for some.
                let from = 1 + k % 2;
                let limit = if k % 5 == 0 { 3 } else { 100 };
                let (events, snapshot) =
                    tokio::join!(store.read_stream(&id, from, limit), store.load_latest(&id));
                (k, from, limit, events.unwrap(), snapshot.unwrap())
            });
        }
        while let Some(done) = reads.join_next().await {
            let (k, from, limit, events, snapshot) = done.unwrap();
            let count = k % 7;
            let expected: Vec<u64> = (from..=count).take(limit).collect();
            let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
            assert_eq!(sequences, expected, "stream r{k} from {from} limit {limit}");
            for e in &events {
                assert_eq!(e.stream, s(&format!("r{k}")));
                let n = k * 100 + e.sequence;
                assert_eq!(e.payload, format!("{{\"n\":{n}}}").into_bytes(), "r{k}");
            }
            match snapshot {
                Some(snap) => {
                    assert_eq!(k % 3, 0, "r{k} has no snapshot");
                    assert_eq!(snap.stream, s(&format!("r{k}")));
                    assert_eq!(snap.version, count);
                    assert_eq!(snap.state, k.to_string().into_bytes());
                }
                None => assert_ne!(k % 3, 0, "r{k}'s snapshot is missing"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_connection_is_cut_off_recovers() {
    let (store, guard) = store_alone("readercut").await;
    store
        .append(&s("c"), ExpectedVersion::NoStream, vec![ev(1), ev(2)])
        .await
        .unwrap();
    let admin = crate::postgres_common::pool(&guard.url, 1).await;
    for round in 0..5 {
        // Keep the readers busy, and cut off every connection of the store's pool meanwhile.
        let mut reads = JoinSet::new();
        for _ in 0..50 {
            let store = store.clone();
            reads.spawn(async move { store.read_stream(&s("c"), 1, 10).await });
        }
        let _: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND backend_type = 'client backend' AND query LIKE $1",
        )
        .bind(format!("%\"{}\".%", guard.schema))
        .fetch_all(&admin)
        .await
        .unwrap();
        // No read hangs on a lost connection.
        while let Some(done) = tokio::time::timeout(Duration::from_secs(30), reads.join_next())
            .await
            .expect("a read hung after its connection was cut off")
        {
            match done.unwrap() {
                Ok(events) => assert_eq!(events.len(), 2, "round {round}"),
                Err(e) => assert!(
                    matches!(e, StoreError::Unavailable(_)),
                    "a cut-off read must be Unavailable (transient), got {e:?}"
                ),
            }
        }
        // Afterwards, reads work again (the pool replaces the lost connections).
        let mut ok = false;
        for _ in 0..50 {
            if let Ok(events) = store.read_stream(&s("c"), 1, 10).await {
                assert_eq!(events.len(), 2);
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "reads did not recover after round {round}");
        assert!(
            matches!(store.load_latest(&s("c")).await, Ok(None)),
            "round {round}"
        );
    }
}
