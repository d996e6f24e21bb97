//! Streams that end on the durable stores: random appends, deletes and truncations against a
//! model (LMDB and file store), removals surviving a reopen, a kernel refusing a deleted
//! stream and rehydrating a truncated one after a restart, and stores written before removals
//! existed (the format-2 fixtures) taking them.
#![cfg(all(feature = "lmdb", feature = "file"))]
#![allow(clippy::unwrap_used)]

use std::path::Path;

use es_core::prelude::*;
use es_core::store::lifecycle::{self, is_tombstone};
use es_core::store::{EventStore, Snapshot, SnapshotStore, StoreError};
use es_core::testkit::conformance::{LifecycleOp, lifecycle_ops_match_the_model};
use es_stores::{FileStore, LmdbStore};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn lmdb(dir: &Path) -> Result<LmdbStore, StoreError> {
    LmdbStore::open(dir)
}

fn file(dir: &Path) -> Result<FileStore, StoreError> {
    FileStore::open(dir)
}

fn lifecycle_op() -> impl Strategy<Value = LifecycleOp> {
    prop_oneof![
        4 => (0u8..4, 0u8..4).prop_map(|(stream, count)| LifecycleOp::Append { stream, count }),
        1 => (0u8..4).prop_map(|stream| LifecycleOp::SoftDelete { stream }),
        1 => (0u8..4).prop_map(|stream| LifecycleOp::HardDelete { stream }),
        2 => (0u8..4, 0u8..=100).prop_map(|(stream, at)| LifecycleOp::Truncate { stream, at }),
    ]
}

/// Runs `ops` on a fresh store, then checks that a reopened store reads the same.
async fn model_run<S, F>(open: F, ops: &[LifecycleOp]) -> TestResult
where
    S: EventStore + SnapshotStore,
    F: Fn(&Path) -> Result<S, StoreError>,
{
    let dir = tempfile::tempdir()?;
    let (all, versions) = {
        let store = open(dir.path())?;
        lifecycle_ops_match_the_model(&store, ops).await;
        let all = store.read_all(1, 10_000).await?;
        let mut versions = Vec::new();
        for e in &all {
            versions.push(store.stream_version(&e.stream).await?);
        }
        (all, versions)
    };
    let store = open(dir.path())?;
    assert_eq!(
        store.read_all(1, 10_000).await?,
        all,
        "the same log after a reopen"
    );
    for (e, v) in all.iter().zip(versions) {
        assert_eq!(store.stream_version(&e.stream).await?, v);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn lmdb_store_deletes_and_truncates_like_the_model(
        ops in proptest::collection::vec(lifecycle_op(), 1..30)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(model_run(lmdb, &ops)).unwrap();
    }

    #[test]
    fn file_store_deletes_and_truncates_like_the_model(
        ops in proptest::collection::vec(lifecycle_op(), 1..30)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(model_run(file, &ops)).unwrap();
    }
}

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

fn kernel<S: es_core::store::Store + Clone>(store: &S) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .register::<Ledger>()
        .snapshot_every(4)
        .build()
        .unwrap()
}

/// On each durable store: truncation after snapshots, a restart (the store closed and opened
/// again), the state rehydrated from the snapshot, a command, then a delete that a later
/// restart still refuses.
async fn kernel_across_restarts<S, F>(open: F) -> TestResult
where
    S: es_core::store::Store + Clone,
    F: Fn(&Path) -> Result<S, StoreError>,
{
    let dir = tempfile::tempdir()?;
    let stream = StreamId::new("ledger", "l-1");
    {
        let store = open(dir.path())?;
        let k = kernel(&store);
        for n in 1..=9 {
            k.dispatch::<Ledger>("l-1", Add { n }).await?;
        }
        k.shutdown().await;
    }
    {
        let store = open(dir.path())?;
        let kept: Vec<u64> = store
            .read_stream(&stream, 1, 100)
            .await?
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(kept, [8, 9], "truncated before the snapshot at 8");
        assert_eq!(store.stream_version(&stream).await?, 9);
        let k = kernel(&store);
        assert_eq!(k.state::<Ledger>("l-1").await?.total, 45);
        assert_eq!(k.dispatch::<Ledger>("l-1", Add { n: 5 }).await?.version, 10);
        k.delete_stream::<Ledger>("l-1").await?;
        k.shutdown().await;
    }
    let store = open(dir.path())?;
    let k = kernel(&store);
    match k.dispatch::<Ledger>("l-1", Add { n: 1 }).await {
        Err(DispatchError::StreamDeleted { .. }) => {}
        other => panic!("expected StreamDeleted after a restart, got {other:?}"),
    }
    k.delete_stream_hard::<Ledger>("l-1").await?;
    let left = store.read_stream(&stream, 1, 100).await?;
    assert!(left.len() == 1 && is_tombstone(&left[0]), "{left:?}");
    assert!(store.load_latest(&stream).await?.is_none());
    k.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn lmdb_kernel_truncates_and_deletes_across_restarts() -> TestResult {
    kernel_across_restarts(lmdb).await
}

#[tokio::test]
async fn file_kernel_truncates_and_deletes_across_restarts() -> TestResult {
    kernel_across_restarts(file).await
}

/// Copies fixture `name` into a fresh temporary directory.
fn fixture(name: &str) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name);
    let dir = tempfile::tempdir()?;
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                std::fs::create_dir_all(&target)?;
                copy(&entry.path(), &target)?;
            } else if entry.file_name() != "expected.json" {
                std::fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
    }
    copy(&from, dir.path())?;
    Ok(dir)
}

/// A store written before removals existed takes one, and reads the same afterwards (but for
/// the removed events) after a reopen.
async fn old_store_takes_a_removal<S, F>(
    name: &str,
    open: F,
) -> Result<tempfile::TempDir, Box<dyn std::error::Error>>
where
    S: es_core::store::Store,
    F: Fn(&Path) -> Result<S, StoreError>,
{
    let dir = fixture(name)?;
    let stream = StreamId::new("bank_account", "acc-1");
    let (before, version) = {
        let store = open(dir.path())?;
        assert!(
            store.truncations().await?.is_empty(),
            "{name}: none recorded"
        );
        let before = store.read_all(1, 10_000).await?;
        let version = store.stream_version(&stream).await?;
        assert!(version >= 2, "{name}: the fixture's {stream} has events");
        SnapshotStore::save(
            &store,
            Snapshot::new(stream.clone(), version - 1, b"{}".to_vec()),
        )
        .await?;
        let removed = lifecycle::truncate_before(&store, &store, &stream, version).await?;
        assert_eq!(removed, version - 1);
        (before, version)
    };
    let store = open(dir.path())?;
    let expected: Vec<_> = before
        .into_iter()
        .filter(|e| e.stream != stream || e.sequence >= version)
        .collect();
    assert_eq!(store.read_all(1, 10_000).await?, expected, "{name}");
    let recorded = store.truncations().await?;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (&recorded[0].stream, recorded[0].before),
        (&stream, version)
    );
    drop(store);
    Ok(dir)
}

#[tokio::test]
async fn lmdb_v2_fixture_takes_a_removal() -> TestResult {
    old_store_takes_a_removal("lmdb-v2", lmdb).await?;
    Ok(())
}

#[tokio::test]
async fn file_v2_fixture_takes_a_removal_and_moves_to_format_3() -> TestResult {
    let dir = old_store_takes_a_removal("file-v2", file).await?;
    let format = std::fs::read_to_string(dir.path().join("format"))?;
    assert_eq!(
        format, "3\n",
        "a store holding removed events says format 3"
    );
    Ok(())
}

/// A crash after the file store recorded a removal but before it overwrote every line (here:
/// none) is finished when the store is next opened.
#[tokio::test]
async fn file_store_finishes_a_recorded_removal_on_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stream = StreamId::new("t", "a");
    {
        let store = FileStore::open(dir.path())?;
        let e = || NewEvent::new("E", b"{\"secret\":\"x\"}".to_vec());
        store
            .append(&stream, ExpectedVersion::NoStream, vec![e(), e(), e(), e()])
            .await?;
        store.close().await?;
    }
    // What the removal writes first: the record (and format 3); then it was killed.
    let record = lifecycle::Truncation {
        stream: stream.clone(),
        before: 3,
        at: chrono::Utc::now(),
    };
    std::fs::write(
        dir.path().join("truncations.json"),
        serde_json::to_vec(&vec![record])?,
    )?;
    std::fs::write(dir.path().join("format"), "3\n")?;
    let store = FileStore::open(dir.path())?;
    let kept: Vec<u64> = store
        .read_stream(&stream, 1, 10)
        .await?
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(kept, [3, 4], "the removal was finished on open");
    assert_eq!(store.stream_version(&stream).await?, 4);
    let log = std::fs::read_to_string(dir.path().join("events.jsonl"))?;
    assert_eq!(
        log.matches("secret").count(),
        2,
        "the removed payloads are gone: {log}"
    );
    Ok(())
}

/// A store of a newer format than this code reads is refused clearly.
#[test]
fn file_store_of_format_4_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    drop(FileStore::open(dir.path())?);
    std::fs::write(dir.path().join("format"), "4\n")?;
    match FileStore::open(dir.path()) {
        Err(StoreError::Incompatible(message)) => assert!(message.contains("format version 4")),
        other => panic!("expected Incompatible, got {other:?}"),
    }
    Ok(())
}
