//! Streams that end on PostgreSQL, with two application nodes (two kernels, each on its own
//! pool and `PostgresStore`) sharing one schema: a stream deleted by one node refuses commands
//! on the other (whose actor still held the stream's state), a hard delete and a truncation by
//! one are seen by the other. Built only with the `postgres` feature; fails without a server
//! at `ES_PG_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_common;

use es_core::prelude::*;
use es_core::store::lifecycle::is_tombstone;
use es_core::store::{EventStore, SnapshotStore};
use es_stores::PostgresStore;
use postgres_common::store;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add {
    n: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct Added {
    n: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Ledger {
    total: u64,
}

#[aggregate(name = "ledger", keep = after_snapshot)]
impl Ledger {
    #[command]
    fn add(&self, cmd: Add) -> Result<Added, std::convert::Infallible> {
        Ok(Added { n: cmd.n })
    }
    #[apply]
    fn added(&mut self, e: &Added) {
        self.total += e.n;
    }
}

fn kernel(store: &PostgresStore) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .register::<Ledger>()
        .snapshot_every(3)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_on_one_node_is_refused_on_the_other() {
    let (store_a, guard) = store("lifecycle").await;
    let store_b = guard.another_node(4).await;
    let (a, b) = (kernel(&store_a), kernel(&store_b));
    for n in 1..=4 {
        a.dispatch::<Ledger>("l-1", Add { n }).await.unwrap();
    }
    a.dispatch::<Ledger>("l-2", Add { n: 1 }).await.unwrap();
    // Node A's actor holds l-1's state; node B deletes the stream.
    let done = b.delete_stream::<Ledger>("l-1").await.unwrap();
    assert_eq!(done.version, 5);
    match a.dispatch::<Ledger>("l-1", Add { n: 1 }).await {
        Err(DispatchError::StreamDeleted { stream }) => {
            assert_eq!(stream, StreamId::new("ledger", "l-1"));
        }
        other => panic!("node A: expected StreamDeleted, got {other:?}"),
    }
    // l-2 goes on; a hard delete by node A is seen by node B.
    assert_eq!(
        b.dispatch::<Ledger>("l-2", Add { n: 2 })
            .await
            .unwrap()
            .version,
        2
    );
    a.delete_stream_hard::<Ledger>("l-1").await.unwrap();
    let stream = StreamId::new("ledger", "l-1");
    let left = store_b.read_stream(&stream, 1, 100).await.unwrap();
    assert!(left.len() == 1 && is_tombstone(&left[0]), "{left:?}");
    assert!(store_b.load_latest(&stream).await.unwrap().is_none());
    assert!(matches!(
        b.dispatch::<Ledger>("l-1", Add { n: 1 }).await,
        Err(DispatchError::StreamDeleted { .. })
    ));
    let recorded = store_b.truncations().await.unwrap();
    assert!(
        recorded.iter().any(|t| t.stream == stream && t.before == 5),
        "{recorded:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_after_snapshot_truncates_and_another_node_rehydrates() {
    let (store_a, guard) = store("lifecycle_keep").await;
    let a = kernel(&store_a);
    for n in 1..=7 {
        a.dispatch::<Ledger>("k-1", Add { n }).await.unwrap();
    }
    a.shutdown().await; // waits for the snapshot writes and their truncations
    let stream = StreamId::new("ledger", "k-1");
    let kept: Vec<u64> = store_a
        .read_stream(&stream, 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(kept, [6, 7]);
    let store_b = guard.another_node(4).await;
    let b = kernel(&store_b);
    assert_eq!(b.state::<Ledger>("k-1").await.unwrap().total, 28);
    assert_eq!(
        b.dispatch::<Ledger>("k-1", Add { n: 2 })
            .await
            .unwrap()
            .version,
        8
    );
    b.shutdown().await;
}
