//! Stream ids on the durable stores: the one rule of `StreamId::validate` holds on every call
//! that takes a stream. The longest valid ids (multi-byte UTF-8 included) work everywhere and
//! survive a reopen; invalid ids are refused with `InvalidInput` before anything is written,
//! and the error quotes only a prefix of a long id.
#![cfg(all(feature = "lmdb", feature = "file"))]

use std::path::Path;

use es_core::store::{
    EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};
use es_stores::{FileStore, LmdbStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn event(n: u64) -> NewEvent {
    NewEvent::new("Added", format!(r#"{{"n":{n}}}"#).into_bytes())
}

/// Ids of exactly the maximum length in bytes.
fn longest() -> Vec<StreamId> {
    let e_acute = "é".repeat(StreamId::MAX_TYPE_LEN / 2); // 2 bytes each
    let crab = "🦀".repeat(StreamId::MAX_ID_LEN / 4); // 4 bytes each
    let ascii_type = "t".repeat(StreamId::MAX_TYPE_LEN);
    let mixed_id = format!("{}{}", "x".repeat(StreamId::MAX_ID_LEN - 3), "€"); // 3 bytes
    let ids = vec![
        StreamId::new(e_acute.clone(), crab.clone()),
        StreamId::new(ascii_type, mixed_id),
        // Same type, ids that differ only in their last character.
        StreamId::new(e_acute.clone(), format!("{}a", &"🦀".repeat(63))),
        StreamId::new(e_acute, format!("{}b", &"🦀".repeat(63))),
    ];
    for id in &ids {
        assert!(id.aggregate_type.len() <= StreamId::MAX_TYPE_LEN);
        assert!(id.aggregate_id.len() <= StreamId::MAX_ID_LEN);
    }
    assert_eq!(ids[0].aggregate_type.len(), StreamId::MAX_TYPE_LEN);
    assert_eq!(ids[0].aggregate_id.len(), StreamId::MAX_ID_LEN);
    ids
}

/// Ids the rule refuses.
fn invalid() -> Vec<StreamId> {
    vec![
        StreamId::new("", "id"),
        StreamId::new("type", ""),
        StreamId::new("t".repeat(StreamId::MAX_TYPE_LEN + 1), "id"),
        StreamId::new("type", "x".repeat(StreamId::MAX_ID_LEN + 1)),
        StreamId::new("type", "é".repeat(StreamId::MAX_ID_LEN / 2 + 1)),
        StreamId::new("type", "x".repeat(10_000)),
        StreamId::new("type", "a\0b"),
        StreamId::new("ty\0pe", "id"),
    ]
}

async fn longest_ids_work<S: EventStore + SnapshotStore>(store: &S) -> TestResult {
    for (n, stream) in (1..).zip(longest()) {
        let done = store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event(n), event(n + 1)],
            )
            .await?;
        assert_eq!(done.version, 2);
        let read = store.read_stream(&stream, 1, 10).await?;
        assert_eq!(read, done.events);
        assert_eq!(store.stream_version(&stream).await?, 2);
        store
            .save(Snapshot::new(stream.clone(), 1, b"one".to_vec()))
            .await?;
        store
            .save(Snapshot::new(stream.clone(), 2, b"two".to_vec()))
            .await?;
        store.prune(&stream, 1).await?;
        let latest = store.load_latest(&stream).await?.ok_or("no snapshot")?;
        assert_eq!((latest.version, latest.state.as_slice()), (2, &b"two"[..]));
    }
    Ok(())
}

async fn longest_ids_survive_a_reopen<S: EventStore + SnapshotStore>(store: &S) -> TestResult {
    for stream in longest() {
        let read = store.read_stream(&stream, 1, 10).await?;
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|e| e.stream == stream));
        let latest = store.load_latest(&stream).await?.ok_or("no snapshot")?;
        assert_eq!(latest.version, 2);
    }
    Ok(())
}

fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    stream: &StreamId,
    result: Result<T, StoreError>,
) {
    match result {
        Err(StoreError::InvalidInput(message)) => {
            assert!(message.contains("invalid stream id"), "{what}: {message}");
            // Only a prefix of a long id is quoted.
            assert!(message.len() < 250, "{what}: {} bytes", message.len());
            if stream.aggregate_id.len() > 100 {
                assert!(!message.contains(&stream.aggregate_id), "{what}");
            }
        }
        other => panic!("{what} of an invalid id: expected InvalidInput, got {other:?}"),
    }
}

async fn invalid_ids_are_refused<S: EventStore + SnapshotStore>(store: &S) -> TestResult {
    let head = store.head_position().await?;
    for stream in invalid() {
        let appended = store
            .append(&stream, ExpectedVersion::Any, vec![event(1)])
            .await;
        assert_refused("append", &stream, appended);
        let empty = store.append(&stream, ExpectedVersion::Any, vec![]).await;
        assert_refused("empty append", &stream, empty);
        let saved = store
            .save(Snapshot::new(stream.clone(), 1, b"s".to_vec()))
            .await;
        assert_refused("snapshot save", &stream, saved);
        assert_refused(
            "read_stream",
            &stream,
            store.read_stream(&stream, 1, 10).await,
        );
        assert_refused(
            "stream_version",
            &stream,
            store.stream_version(&stream).await,
        );
        assert_refused("load_latest", &stream, store.load_latest(&stream).await);
        assert_refused("prune", &stream, store.prune(&stream, 0).await);
    }
    // Nothing was written.
    assert_eq!(store.head_position().await?, head);
    assert_eq!(store.read_all(1, 1000).await?.len() as u64, head);
    Ok(())
}

/// The snapshot directories of a file store.
fn snapshot_dirs(dir: &Path) -> Result<usize, std::io::Error> {
    Ok(std::fs::read_dir(dir.join("snapshots"))?.count())
}

#[tokio::test]
async fn file_store_takes_the_longest_ids_and_refuses_invalid_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = FileStore::open(dir.path())?;
    assert_eq!(store.dir(), dir.path());
    longest_ids_work(&store).await?;
    let dirs = snapshot_dirs(dir.path())?;
    invalid_ids_are_refused(&store).await?;
    assert_eq!(
        snapshot_dirs(dir.path())?,
        dirs,
        "no snapshot directory was created"
    );
    store.close().await?;
    let store = FileStore::open(dir.path())?;
    longest_ids_survive_a_reopen(&store).await?;
    Ok(())
}

#[tokio::test]
async fn lmdb_store_takes_the_longest_ids_and_refuses_invalid_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options().map_size(1 << 20).open(dir.path())?;
    assert_eq!(store.path(), dir.path().canonicalize()?);
    longest_ids_work(&store).await?;
    invalid_ids_are_refused(&store).await?;
    store.close().await?;
    let store = LmdbStore::open(dir.path())?;
    longest_ids_survive_a_reopen(&store).await?;
    Ok(())
}
