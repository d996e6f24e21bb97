//! On-disk format: stores written by an earlier version of `es-stores` (the fixtures under
//! `tests/fixtures/`) still open and read back exactly what was written.
//!
//! Each fixture directory holds the store files and `expected.json`: every event (as
//! `read_all` returned it when the fixture was written), the latest snapshot of each stream
//! and every checkpoint. The tests open a copy of the fixture (opening may repair or create
//! files) and compare.
//!
//! The fixtures were written by the `#[ignore]`d test `write_fixtures` below:
//! `ES_WRITE_FIXTURES=1 cargo test -p es-stores --test fixtures -- --ignored write_fixtures`.
//! Never regenerate them to make a failing test pass: a failure means the format changed.
#![cfg(all(feature = "lmdb", feature = "file"))]

use std::path::{Path, PathBuf};

use es_core::store::{
    Checkpoint, CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot,
    SnapshotStore, StreamId,
};
use es_stores::{FileStore, LmdbStore};
use serde::{Deserialize, Serialize};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What a fixture holds.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Expected {
    events: Vec<RecordedEvent>,
    /// The latest snapshot of each stream that has one.
    snapshots: Vec<Snapshot>,
    /// `(name, checkpoint)` for every checkpoint.
    checkpoints: Vec<(String, Checkpoint)>,
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn streams() -> Vec<StreamId> {
    vec![
        StreamId::new("bank_account", "acc-1"),
        StreamId::new("bank_account", "acc-2"),
        StreamId::new("order", "o-é/1"),
    ]
}

const CHECKPOINTS: [&str; 2] = ["balances", "audit log"];

fn with_metadata(event: NewEvent, pairs: &[(&str, &str)]) -> NewEvent {
    pairs
        .iter()
        .fold(event, |event, (k, v)| event.metadata(*k, *v))
}

/// Copies a fixture (its store files, not `expected.json`) into a fresh temporary directory.
fn copy_fixture(name: &str) -> Result<(tempfile::TempDir, Expected), Box<dyn std::error::Error>> {
    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &target)?;
            } else if entry.file_name() != "expected.json" {
                std::fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
    }
    let source = fixture_dir(name);
    let expected: Expected = serde_json::from_slice(&std::fs::read(source.join("expected.json"))?)?;
    let dir = tempfile::tempdir()?;
    copy_dir(&source, &dir.path().join("store"))?;
    Ok((dir, expected))
}

/// Reads everything the fixture should hold from `store` and compares it with `expected`.
async fn check<S>(store: &S, expected: &Expected) -> TestResult
where
    S: EventStore + SnapshotStore + CheckpointStore,
{
    // The fixture's shape, so that a truncated `expected.json` cannot pass.
    assert_eq!(expected.events.len(), 7);
    assert_eq!(expected.snapshots.len(), 2);
    assert_eq!(expected.checkpoints.len(), 2);

    assert_eq!(store.read_all(1, 100).await?, expected.events);
    assert_eq!(store.head_position().await?, 7);
    for stream in streams() {
        let mine: Vec<RecordedEvent> = expected
            .events
            .iter()
            .filter(|e| e.stream == stream)
            .cloned()
            .collect();
        assert_eq!(store.read_stream(&stream, 1, 100).await?, mine, "{stream}");
        assert_eq!(
            store.stream_version(&stream).await?,
            mine.len() as u64,
            "{stream}"
        );
        let snapshot = expected.snapshots.iter().find(|s| s.stream == stream);
        assert_eq!(
            store.load_latest(&stream).await?.as_ref(),
            snapshot,
            "{stream}"
        );
    }
    for (name, checkpoint) in &expected.checkpoints {
        assert_eq!(
            CheckpointStore::load(store, name).await?.as_ref(),
            Some(checkpoint)
        );
    }
    // Metadata, a non-JSON payload and a batch survived.
    assert_eq!(
        expected.events[0]
            .metadata
            .get("correlation_id")
            .and_then(|v| v.as_str()),
        Some("c-1")
    );
    assert_eq!(expected.events[5].payload, vec![0, 159, 146, 150, 255]);
    Ok(())
}

#[tokio::test]
async fn a_file_store_written_by_an_earlier_version_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("file-v1")?;
    reads_back_and_appends(FileStore::open(dir.path().join("store"))?, &expected).await
}

#[tokio::test]
async fn an_lmdb_store_written_by_an_earlier_version_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("lmdb-v1")?;
    reads_back_and_appends(LmdbStore::open(dir.path().join("store"))?, &expected).await
}

/// Checks everything the fixture holds, then that the store accepts appends after its events.
async fn reads_back_and_appends<S>(store: S, expected: &Expected) -> TestResult
where
    S: EventStore + SnapshotStore + CheckpointStore,
{
    check(&store, expected).await?;
    let stream = StreamId::new("bank_account", "acc-2");
    let done = store
        .append(
            &stream,
            ExpectedVersion::Exact(1),
            vec![NewEvent::new("Deposited", br#"{"amount":1}"#.to_vec())],
        )
        .await?;
    assert_eq!((done.version, done.events[0].position), (2, 8));
    Ok(())
}

/// Writes the fixtures' content into `store` and returns what it holds.
async fn fill<S>(store: &S) -> Result<Expected, Box<dyn std::error::Error>>
where
    S: EventStore + SnapshotStore + CheckpointStore,
{
    let [acc1, acc2, order] = <[StreamId; 3]>::try_from(streams()).map_err(|_| "three streams")?;
    store
        .append(
            &acc1,
            ExpectedVersion::NoStream,
            vec![
                with_metadata(
                    NewEvent::new("Opened", br#"{"owner":"Ada"}"#.to_vec()),
                    &[("correlation_id", "c-1"), ("user", "ada")],
                ),
                NewEvent::new("Deposited", br#"{"amount":100}"#.to_vec()),
            ],
        )
        .await?;
    store
        .append(
            &acc2,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Opened", br#"{"owner":"Bob"}"#.to_vec())],
        )
        .await?;
    store
        .append(
            &acc1,
            ExpectedVersion::Exact(2),
            vec![NewEvent::new("Withdrawn", br#"{"amount":30}"#.to_vec()).version(2)],
        )
        .await?;
    store
        .append(
            &order,
            ExpectedVersion::NoStream,
            vec![
                NewEvent::new(
                    "Placed",
                    r#"{"items":["é",1,2.5,null]}"#.as_bytes().to_vec(),
                ),
                with_metadata(
                    NewEvent::new("Blob", vec![0, 159, 146, 150, 255]),
                    &[("content-type", "application/octet-stream")],
                ),
            ],
        )
        .await?;
    store
        .append(
            &acc1,
            ExpectedVersion::Exact(3),
            vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())],
        )
        .await?;
    let at = |secs| chrono::DateTime::from_timestamp(secs, 123_456_789).ok_or("timestamp");
    for (stream, version, state) in [
        (&acc1, 2, br#"{"balance":100}"#.to_vec()),
        (&acc1, 3, br#"{"balance":70}"#.to_vec()),
        (&order, 1, vec![1, 2, 3, 0, 255]),
    ] {
        SnapshotStore::save(
            store,
            Snapshot {
                stream: stream.clone(),
                version,
                state,
                timestamp: at(1_700_000_000 + version as i64)?,
            },
        )
        .await?;
    }
    CheckpointStore::save(store, CHECKPOINTS[0], 6, Some(br#"{"total":175}"#.to_vec())).await?;
    CheckpointStore::save(store, CHECKPOINTS[1], 7, None).await?;

    let mut snapshots = Vec::new();
    for stream in streams() {
        snapshots.extend(store.load_latest(&stream).await?);
    }
    let mut checkpoints = Vec::new();
    for name in CHECKPOINTS {
        let checkpoint = CheckpointStore::load(store, name)
            .await?
            .ok_or("checkpoint missing")?;
        checkpoints.push((name.to_owned(), checkpoint));
    }
    Ok(Expected {
        events: store.read_all(1, 100).await?,
        snapshots,
        checkpoints,
    })
}

/// Writes the fixtures (run by hand, see the module docs; the lock files are left out).
#[tokio::test]
#[ignore = "writes tests/fixtures; run by hand with ES_WRITE_FIXTURES=1"]
async fn write_fixtures() -> TestResult {
    if std::env::var_os("ES_WRITE_FIXTURES").is_none() {
        return Ok(());
    }
    let write = |dir: &Path, expected: &Expected| -> TestResult {
        let mut text = serde_json::to_string_pretty(expected)?;
        text.push('\n');
        std::fs::write(dir.join("expected.json"), text)?;
        Ok(())
    };

    let dir = fixture_dir("file-v1");
    let store = FileStore::open(&dir)?;
    let expected = fill(&store).await?;
    drop(store);
    std::fs::remove_file(dir.join("LOCK"))?;
    write(&dir, &expected)?;

    let dir = fixture_dir("lmdb-v1");
    let store = LmdbStore::options().map_size(256 << 10).open(&dir)?;
    let expected = fill(&store).await?;
    drop(store);
    for lock in ["lock.mdb", "es-store.lock"] {
        std::fs::remove_file(dir.join(lock))?;
    }
    write(&dir, &expected)?;
    Ok(())
}
