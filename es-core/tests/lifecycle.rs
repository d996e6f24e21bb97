//! Streams that end, through the kernel: a deleted stream refuses commands (also in a kernel
//! started afresh on the same store), a hard delete keeps refusing, `keep = after_snapshot`
//! truncates after each snapshot and the stream still rehydrates; and random appends, deletes
//! and truncations on `MemoryStore` against a model.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use es_core::prelude::*;
use es_core::store::lifecycle::is_tombstone;
use es_core::store::{EventStore, SnapshotStore};
use es_core::testkit::conformance::{LifecycleOp, lifecycle_ops_match_the_model};
use proptest::prelude::*;
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
struct Tally {
    total: u64,
}

#[aggregate(name = "tally")]
impl Tally {
    #[command]
    fn add(&self, cmd: Add) -> Result<Added, std::convert::Infallible> {
        Ok(Added { n: cmd.n })
    }
    #[apply]
    fn added(&mut self, e: &Added) {
        self.total += e.n;
    }
}

/// The same aggregate, truncated after each snapshot.
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

fn kernel(store: &MemoryStore) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .register::<Tally>()
        .register::<Ledger>()
        .snapshot_every(3)
        .build()
        .unwrap()
}

fn deleted<T: std::fmt::Debug>(result: Result<T, DispatchError<std::convert::Infallible>>) {
    match result {
        Err(DispatchError::StreamDeleted { stream }) => {
            assert_eq!(stream, StreamId::new("tally", "t-1"));
        }
        other => panic!("expected StreamDeleted, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deleted_stream_refuses_commands_also_after_a_restart() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Tally>("t-1", Add { n: 2 }).await.unwrap();
    k.dispatch::<Tally>("t-2", Add { n: 5 }).await.unwrap();
    // The actor of t-1 is live (its state cached) when the stream is deleted.
    let done = k.delete_stream::<Tally>("t-1").await.unwrap();
    assert_eq!((done.version, done.tombstoned), (2, true));
    deleted(k.dispatch::<Tally>("t-1", Add { n: 1 }).await);
    deleted(k.state::<Tally>("t-1").await);
    // Other streams are untouched, and the events stay readable.
    assert_eq!(k.state::<Tally>("t-2").await.unwrap().total, 5);
    let events = store
        .read_stream(&StreamId::new("tally", "t-1"), 1, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    k.shutdown().await;

    let k = kernel(&store);
    deleted(k.dispatch::<Tally>("t-1", Add { n: 1 }).await);
    assert_eq!(
        store
            .stream_version(&StreamId::new("tally", "t-1"))
            .await
            .unwrap(),
        2,
        "a refused command writes nothing"
    );
    k.shutdown().await;
}

#[tokio::test]
async fn deleting_needs_a_registered_type_and_a_stream_with_events() {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .store(store)
        .register::<Tally>()
        .build()
        .unwrap();
    assert!(matches!(
        k.delete_stream::<Ledger>("l-1").await,
        Err(DispatchError::NotRegistered)
    ));
    assert!(matches!(
        k.delete_stream::<Tally>("never").await,
        Err(DispatchError::Store(es_core::StoreError::InvalidInput(_)))
    ));
    k.shutdown().await;
}

#[tokio::test]
async fn a_hard_deleted_stream_loses_its_events_and_snapshots_and_keeps_refusing() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    for n in 1..=4 {
        k.dispatch::<Tally>("t-1", Add { n }).await.unwrap();
    }
    k.dispatch::<Tally>("t-2", Add { n: 9 }).await.unwrap();
    k.shutdown().await; // waits for the snapshot write
    let stream = StreamId::new("tally", "t-1");
    assert!(store.load_latest(&stream).await.unwrap().is_some());

    let k = kernel(&store);
    let done = k.delete_stream_hard::<Tally>("t-1").await.unwrap();
    assert_eq!((done.version, done.removed), (5, 4));
    let left = store.read_stream(&stream, 1, 10).await.unwrap();
    assert!(left.len() == 1 && is_tombstone(&left[0]));
    assert!(store.load_latest(&stream).await.unwrap().is_none());
    deleted(k.dispatch::<Tally>("t-1", Add { n: 1 }).await);
    // t-2's event is still at position 5, and the log reads on past the hole.
    let all = store.read_all(1, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [5, 6],
        "the other stream's event and the tombstone"
    );
    k.shutdown().await;
    let k = kernel(&store);
    deleted(k.dispatch::<Tally>("t-1", Add { n: 1 }).await);
    k.shutdown().await;
}

#[tokio::test]
async fn keep_after_snapshot_truncates_and_the_stream_rehydrates_after_a_restart() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    for n in 1..=7 {
        k.dispatch::<Ledger>("l-1", Add { n }).await.unwrap();
    }
    k.shutdown().await; // waits for the snapshot writes (at 3 and 6) and their truncations
    let stream = StreamId::new("ledger", "l-1");
    let kept = store.read_stream(&stream, 1, 100).await.unwrap();
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [6, 7],
        "the events before the latest snapshot's version are gone"
    );
    assert_eq!(store.stream_version(&stream).await.unwrap(), 7);

    let k = kernel(&store);
    assert_eq!(k.state::<Ledger>("l-1").await.unwrap().total, 28);
    let done = k.dispatch::<Ledger>("l-1", Add { n: 10 }).await.unwrap();
    assert_eq!(done.version, 8);
    assert_eq!(k.state::<Ledger>("l-1").await.unwrap().total, 38);
    k.shutdown().await;
    // A stream of a type without `keep` keeps everything.
    let k = kernel(&store);
    for n in 1..=4 {
        k.dispatch::<Tally>("t-9", Add { n }).await.unwrap();
    }
    k.shutdown().await;
    let all = store
        .read_stream(&StreamId::new("tally", "t-9"), 1, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn a_truncated_stream_without_its_snapshot_fails_to_load_clearly() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    for n in 1..=4 {
        k.dispatch::<Ledger>("l-2", Add { n }).await.unwrap();
    }
    k.shutdown().await;
    let stream = StreamId::new("ledger", "l-2");
    store.prune(&stream, 0).await.unwrap();
    let k = Kernel::builder()
        .store(store.clone())
        .register::<Ledger>()
        .passivate_after(Duration::from_secs(60))
        .build()
        .unwrap();
    match k.dispatch::<Ledger>("l-2", Add { n: 1 }).await {
        Err(DispatchError::Store(es_core::StoreError::Corrupt(message))) => {
            assert!(message.contains("removed"), "{message}");
        }
        other => panic!("expected a Corrupt store error, got {other:?}"),
    }
    k.shutdown().await;
}

fn lifecycle_op() -> impl Strategy<Value = LifecycleOp> {
    prop_oneof![
        4 => (0u8..4, 0u8..4).prop_map(|(stream, count)| LifecycleOp::Append { stream, count }),
        1 => (0u8..4).prop_map(|stream| LifecycleOp::SoftDelete { stream }),
        1 => (0u8..4).prop_map(|stream| LifecycleOp::HardDelete { stream }),
        2 => (0u8..4, 0u8..=100).prop_map(|(stream, at)| LifecycleOp::Truncate { stream, at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    #[test]
    fn memory_store_deletes_and_truncates_like_the_model(
        ops in proptest::collection::vec(lifecycle_op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(lifecycle_ops_match_the_model(&MemoryStore::new(), &ops));
    }
}

/// `keep = all` is the default, spelled out.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Archive;

#[aggregate(name = "archive", keep = all)]
impl Archive {
    #[apply]
    fn added(&mut self, _: &Added) {}
}

#[test]
fn keep_sets_the_aggregate_constant() {
    let kept = [
        <Ledger as Aggregate>::KEEP_AFTER_SNAPSHOT,
        <Tally as Aggregate>::KEEP_AFTER_SNAPSHOT,
        <Archive as Aggregate>::KEEP_AFTER_SNAPSHOT,
    ];
    assert_eq!(kept, [true, false, false]);
}
