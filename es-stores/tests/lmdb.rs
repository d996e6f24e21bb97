//! LmdbStore: store contract, group commit, map growth, opening rules and reopening.
#![cfg(feature = "lmdb")]

use std::collections::HashMap;
use std::time::Duration;

use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError,
    StreamId,
};
use es_stores::{Durability, LmdbStore};
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn event(n: u64) -> NewEvent {
    NewEvent::new("Deposited", format!(r#"{{"amount":{n}}}"#).into_bytes())
}

fn stream(id: &str) -> StreamId {
    StreamId::new("bank_account", id)
}

fn fresh() -> Result<(LmdbStore, TempDir), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let store = LmdbStore::options()
        .durability(Durability::NoSync {
            sync_interval: None,
        })
        .open(dir.path())?;
    Ok((store, dir))
}

#[tokio::test]
async fn append_and_read_back() -> TestResult {
    let (store, _dir) = fresh()?;
    let a = stream("a");
    let b = stream("b");
    let first = store
        .append(
            &a,
            ExpectedVersion::NoStream,
            vec![event(1).metadata("correlation", "c-1").version(3), event(2)],
        )
        .await?;
    assert_eq!(first.version, 2);
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| (e.sequence, e.position))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
    store
        .append(&b, ExpectedVersion::Any, vec![event(10)])
        .await?;
    store
        .append(&a, ExpectedVersion::Exact(2), vec![event(3)])
        .await?;

    let read = store.read_stream(&a, 0, 100).await?;
    assert_eq!(read.len(), 3);
    assert_eq!(read[0], first.events[0]);
    assert_eq!(
        read[0].metadata.get("correlation").and_then(|v| v.as_str()),
        Some("c-1")
    );
    assert_eq!(read[0].event_version, 3);
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert_eq!(store.read_stream(&a, 2, 1).await?[0].sequence, 2);
    assert_eq!(store.read_stream(&a, 4, 10).await?.len(), 0);
    assert_eq!(store.read_stream(&stream("nobody"), 1, 10).await?.len(), 0);
    assert_eq!(store.read_stream(&a, 1, 0).await?.len(), 0);

    let all = store.read_all(0, 100).await?;
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(all[2].stream, b);
    assert_eq!(store.read_all(3, 1).await?[0].position, 3);
    assert!(store.read_all(5, 10).await?.is_empty());

    assert_eq!(store.stream_version(&a).await?, 3);
    assert_eq!(store.stream_version(&stream("nobody")).await?, 0);
    assert_eq!(store.head_position().await?, 4);
    Ok(())
}

#[tokio::test]
async fn long_reads_span_several_chunks() -> TestResult {
    let (store, _dir) = fresh()?;
    let a = stream("long");
    for batch in 0..5u64 {
        store
            .append(
                &a,
                ExpectedVersion::Exact(batch * 1000),
                (0..1000).map(event).collect(),
            )
            .await?;
        store
            .append(&stream("other"), ExpectedVersion::Any, vec![event(0)])
            .await?;
    }
    let read = store.read_stream(&a, 1, usize::MAX).await?;
    assert_eq!(read.len(), 5000);
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, e)| e.sequence == i as u64 + 1)
    );
    assert_eq!(store.read_stream(&a, 4000, 4096).await?.len(), 1001);
    let all = store.read_all(1, usize::MAX).await?;
    assert_eq!(all.len(), 5005);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.position == i as u64 + 1)
    );
    assert_eq!(store.read_all(10, 4097).await?.len(), 4097);
    Ok(())
}

#[tokio::test]
async fn expected_versions() -> TestResult {
    let (store, _dir) = fresh()?;
    let a = stream("a");
    store
        .append(&a, ExpectedVersion::NoStream, vec![event(1)])
        .await?;
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        match store.append(&a, expected, vec![event(9)]).await {
            Err(StoreError::Conflict { actual: 1, .. }) => {}
            other => panic!("{expected:?}: {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&a).await?, 1);
    assert_eq!(store.head_position().await?, 1);
    // An empty append checks the version and writes nothing.
    assert_eq!(
        store
            .append(&a, ExpectedVersion::Exact(1), vec![])
            .await?
            .version,
        1
    );
    assert!(matches!(
        store.append(&a, ExpectedVersion::NoStream, vec![]).await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .append(&a, ExpectedVersion::Exact(1), vec![event(2)])
        .await?;
    store
        .append(&a, ExpectedVersion::Any, vec![event(3)])
        .await?;
    assert_eq!(store.stream_version(&a).await?, 3);
    Ok(())
}

#[tokio::test]
async fn snapshots_and_checkpoints() -> TestResult {
    let (store, _dir) = fresh()?;
    let a = stream("a");
    assert!(store.load_latest(&a).await?.is_none());
    for version in [10, 30, 20] {
        SnapshotStore::save(
            &store,
            Snapshot::new(a.clone(), version, format!("s{version}")),
        )
        .await?;
    }
    SnapshotStore::save(&store, Snapshot::new(stream("a2"), 99, "other")).await?;
    let latest = store.load_latest(&a).await?.ok_or("no snapshot")?;
    assert_eq!((latest.version, latest.state.as_slice()), (30, &b"s30"[..]));
    // Replacing the same version.
    SnapshotStore::save(&store, Snapshot::new(a.clone(), 30, "again")).await?;
    assert_eq!(
        store.load_latest(&a).await?.ok_or("no snapshot")?.state,
        b"again"
    );
    store.prune(&a, 1).await?;
    assert_eq!(
        store.load_latest(&a).await?.ok_or("no snapshot")?.version,
        30
    );
    store.prune(&a, 0).await?;
    assert!(store.load_latest(&a).await?.is_none());
    assert_eq!(
        store
            .load_latest(&stream("a2"))
            .await?
            .ok_or("no snapshot")?
            .version,
        99
    );

    assert!(CheckpointStore::load(&store, "balances").await?.is_none());
    CheckpointStore::save(&store, "balances", 7, Some(b"{}".to_vec())).await?;
    CheckpointStore::save(&store, "", 3, None).await?;
    let cp = CheckpointStore::load(&store, "balances")
        .await?
        .ok_or("no checkpoint")?;
    assert_eq!((cp.position, cp.state.as_deref()), (7, Some(&b"{}"[..])));
    let cp = CheckpointStore::load(&store, "")
        .await?
        .ok_or("no checkpoint")?;
    assert_eq!((cp.position, cp.state), (3, None));
    Ok(())
}

#[tokio::test]
async fn subscribe_follows_commits() -> TestResult {
    let (store, _dir) = fresh()?;
    let mut head = store.subscribe();
    assert_eq!(*head.borrow_and_update(), 0);
    let writer = store.clone();
    let task = tokio::spawn(async move {
        writer
            .append(&stream("a"), ExpectedVersion::Any, vec![event(1), event(2)])
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), head.wait_for(|&h| h >= 2)).await??;
    task.await??;
    // A snapshot-only commit does not move the head.
    SnapshotStore::save(&store, Snapshot::new(stream("a"), 2, "x")).await?;
    assert!(!head.has_changed()?);
    Ok(())
}

#[tokio::test]
async fn reopen_keeps_everything() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let store = LmdbStore::open(dir.path())?;
        for i in 0..50 {
            store
                .append(
                    &stream(&format!("s{}", i % 5)),
                    ExpectedVersion::Exact(i / 5),
                    vec![event(i)],
                )
                .await?;
        }
        SnapshotStore::save(&store, Snapshot::new(stream("s1"), 10, "snap")).await?;
        CheckpointStore::save(&store, "p", 50, Some(b"state".to_vec())).await?;
    }
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.head_position().await?, 50);
    assert_eq!(*store.subscribe().borrow(), 50);
    assert_eq!(store.stream_version(&stream("s3")).await?, 10);
    assert_eq!(store.read_all(1, 100).await?.len(), 50);
    assert_eq!(
        store
            .load_latest(&stream("s1"))
            .await?
            .ok_or("no snapshot")?
            .state,
        b"snap"
    );
    assert_eq!(
        CheckpointStore::load(&store, "p")
            .await?
            .ok_or("no checkpoint")?
            .position,
        50
    );
    let next = store
        .append(&stream("s0"), ExpectedVersion::Exact(10), vec![event(0)])
        .await?;
    assert_eq!((next.version, next.events[0].position), (11, 51));
    Ok(())
}

/// Many tasks append at once: every request gets its own answer, conflicts are decided inside
/// the shared transaction, and positions and sequences stay gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_answers_each_request() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::open(dir.path())?; // durable: commits are slow, so batches form
    let contended = stream("contended");
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = store.clone();
        let contended = contended.clone();
        tasks.push(tokio::spawn(async move {
            let own = stream(&format!("own-{t}"));
            let mut ok = 0u64;
            let mut conflicts = 0u64;
            for i in 0..10u64 {
                let done = store
                    .append(
                        &own,
                        ExpectedVersion::Exact(2 * i),
                        vec![event(t), event(i)],
                    )
                    .await?;
                assert_eq!(done.version, 2 * i + 2);
                // Everyone races for the same next version of the contended stream.
                let version = store.stream_version(&contended).await?;
                match store
                    .append(&contended, ExpectedVersion::Exact(version), vec![event(t)])
                    .await
                {
                    Ok(done) => {
                        assert_eq!(done.version, version + 1);
                        ok += 1;
                    }
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(other) => return Err(other),
                }
            }
            Ok::<_, StoreError>((ok, conflicts))
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        let (o, c) = task.await??;
        ok += o;
        conflicts += c;
    }
    assert_eq!(ok + conflicts, 640);
    assert!(ok >= 10, "only {ok} contended appends succeeded");
    assert_eq!(store.stream_version(&contended).await?, ok);
    let all = store.read_all(1, usize::MAX).await?;
    assert_eq!(all.len() as u64, 64 * 20 + ok);
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1);
        let v = versions.entry(e.stream.clone()).or_default();
        *v += 1;
        assert_eq!(e.sequence, *v, "gap in {}", e.stream);
    }
    Ok(())
}

/// Starting from a 1 MiB map, writing far more grows the map without any error.
#[tokio::test]
async fn map_full_grows_the_map() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options()
        .map_size(1 << 20)
        .max_map_size(1 << 30)
        .durability(Durability::NoSync {
            sync_interval: None,
        })
        .open(dir.path())?;
    let payload = vec![b'x'; 4000];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream(&format!("big-{t}"));
            for i in 0..40u64 {
                let events = (0..20)
                    .map(|_| NewEvent::new("Blob", payload.clone()))
                    .collect();
                store
                    .append(&s, ExpectedVersion::Exact(i * 20), events)
                    .await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    // 8 * 40 * 20 events of 4 KB: about 25 MiB.
    assert!(store.map_size() >= 16 << 20, "map is {}", store.map_size());
    assert_eq!(store.head_position().await?, 6400);
    let read = store.read_stream(&stream("big-3"), 1, usize::MAX).await?;
    assert_eq!(read.len(), 800);
    assert!(read.iter().all(|e| e.payload == payload));
    Ok(())
}

/// With a maximum too small, the write that does not fit fails with `Full` and writes nothing;
/// the store stays usable.
#[tokio::test]
async fn map_full_past_the_maximum_is_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options()
        .map_size(1 << 20)
        .max_map_size(2 << 20)
        .durability(Durability::NoSync {
            sync_interval: None,
        })
        .open(dir.path())?;
    let s = stream("big");
    let mut version = 0;
    let error = loop {
        let events = (0..10)
            .map(|_| NewEvent::new("Blob", vec![b'y'; 8000]))
            .collect();
        match store
            .append(&s, ExpectedVersion::Exact(version), events)
            .await
        {
            Ok(done) => version = done.version,
            Err(e) => break e,
        }
        assert!(version < 10_000, "never filled up");
    };
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(error.to_string().contains("max_map_size"), "{error}");
    assert!(version > 0);
    assert_eq!(store.stream_version(&s).await?, version);
    assert_eq!(
        store.read_stream(&s, 1, usize::MAX).await?.len() as u64,
        version
    );
    // Small writes that fit still work, and snapshots too.
    let small = store
        .append(&stream("small"), ExpectedVersion::NoStream, vec![event(1)])
        .await;
    assert!(
        matches!(small, Ok(_) | Err(StoreError::Full(_))),
        "{small:?}"
    );
    Ok(())
}

#[tokio::test]
async fn durability_modes_round_trip() -> TestResult {
    for durability in [
        Durability::Durable,
        Durability::NoMetaSync,
        Durability::NoSync {
            sync_interval: Some(Duration::from_millis(5)),
        },
    ] {
        let dir = tempfile::tempdir()?;
        {
            let store = LmdbStore::options()
                .durability(durability)
                .open(dir.path())?;
            store
                .append(&stream("a"), ExpectedVersion::NoStream, vec![event(1)])
                .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            store.sync()?;
        }
        let store = LmdbStore::open(dir.path())?;
        assert_eq!(
            store.stream_version(&stream("a")).await?,
            1,
            "{durability:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn second_open_in_process_is_the_same_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let one = LmdbStore::open(dir.path())?;
    let two = LmdbStore::open(dir.path().join(".").join("."))?;
    assert!(one.is_same_store(&two));
    one.append(&stream("a"), ExpectedVersion::Any, vec![event(1)])
        .await?;
    assert_eq!(two.stream_version(&stream("a")).await?, 1);
    drop(one);
    drop(two);
    // Closed and reopened: a new store with the same data.
    let three = LmdbStore::open(dir.path())?;
    assert_eq!(three.head_position().await?, 1);
    // Drop and reopen in a tight loop, from several threads at once.
    drop(three);
    let path = dir.path().to_path_buf();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || -> Result<(), StoreError> {
                for _ in 0..20 {
                    let store = LmdbStore::open(&path)?;
                    drop(store);
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "thread panicked")??;
    }
    Ok(())
}

#[test]
fn garbage_data_file_is_incompatible() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("data.mdb"), vec![0x5a; 64 * 1024])?;
    match LmdbStore::open(dir.path()) {
        Err(StoreError::Incompatible(message)) => {
            assert!(message.contains("not an LMDB file"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A short garbage file too.
    std::fs::write(dir.path().join("data.mdb"), b"hello")?;
    assert!(matches!(
        LmdbStore::open(dir.path()),
        Err(StoreError::Incompatible(_))
    ));
    Ok(())
}

#[test]
fn directory_of_other_files_is_incompatible() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("events.jsonl"), b"{}\n")?;
    match LmdbStore::open(dir.path()) {
        Err(StoreError::Incompatible(message)) => assert!(message.contains("events.jsonl")),
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("data.mdb").exists(), "left files behind");
    let file = dir.path().join("events.jsonl");
    assert!(matches!(
        LmdbStore::open(&file),
        Err(StoreError::Incompatible(_))
    ));
    Ok(())
}

/// Opens the raw environment of a closed store, for tampering.
#[allow(unsafe_code)]
fn raw_env(path: &std::path::Path) -> heed::Result<heed::Env> {
    // SAFETY: no store has this path open while the test tampers with it.
    unsafe { heed::EnvOpenOptions::new().max_dbs(8).open(path) }
}

#[test]
fn newer_format_version_is_incompatible() -> TestResult {
    use heed::types::Bytes;
    let dir = tempfile::tempdir()?;
    drop(LmdbStore::open(dir.path())?);
    {
        let env = raw_env(dir.path())?;
        let wtxn = env.write_txn()?;
        env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
            let meta: heed::Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("meta"))?;
            meta.put(wtxn, b"format_version", &99u32.to_be_bytes())?;
            Ok(heed::CommitOrAbort::<_, ()>::Commit(()))
        })?;
    }
    match LmdbStore::open(dir.path()) {
        Err(StoreError::Incompatible(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// Sets the format version in the meta database of the closed store at `path`.
fn set_format_version(path: &std::path::Path, version: u32) -> TestResult {
    use heed::types::Bytes;
    let env = raw_env(path)?;
    let wtxn = env.write_txn()?;
    env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
        let meta: heed::Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("meta"))?;
        meta.put(wtxn, b"format_version", &version.to_be_bytes())?;
        Ok(heed::CommitOrAbort::<_, ()>::Commit(()))
    })?;
    Ok(())
}

/// The format version in the meta database of the closed store at `path`.
fn format_version(path: &std::path::Path) -> Result<u32, Box<dyn std::error::Error>> {
    use heed::types::Bytes;
    let env = raw_env(path)?;
    let rtxn = env.read_txn()?;
    let mut version = None;
    env.open_databases_and_commit(rtxn, |dbo, rtxn| -> heed::Result<_> {
        let meta: Option<heed::Database<'_, Bytes, Bytes>> =
            dbo.open_database(rtxn, Some("meta"))?;
        if let Some(meta) = meta {
            version = meta.get(rtxn, b"format_version")?.map(<[u8]>::to_vec);
        }
        Ok(heed::CommitOrAbort::<_, ()>::Commit(()))
    })?;
    let bytes = version.ok_or("no format version")?;
    Ok(u32::from_be_bytes(<[u8; 4]>::try_from(bytes.as_slice())?))
}

/// The very next format version (4) is refused too, and the refusal changes nothing.
#[test]
fn the_next_format_version_is_incompatible() -> TestResult {
    let dir = tempfile::tempdir()?;
    drop(LmdbStore::open(dir.path())?);
    assert_eq!(format_version(dir.path())?, 3, "a new store is format 3");
    set_format_version(dir.path(), 4)?;
    match LmdbStore::open(dir.path()) {
        Err(StoreError::Incompatible(message)) => {
            assert!(message.contains("format version 4"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(format_version(dir.path())?, 4, "left as it was");
    Ok(())
}

/// A store whose meta says format 1 is raised to the current format (3) by the first open (its
/// records are read as they are) and left at it by the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_store_is_raised_to_the_current_format_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let store = LmdbStore::open(dir.path())?;
        store
            .append(&stream("a"), ExpectedVersion::NoStream, vec![event(1)])
            .await?;
        store.close().await?;
    }
    set_format_version(dir.path(), 1)?;
    let store = LmdbStore::open(dir.path())?;
    let events = store.read_all(0, 10).await?;
    assert_eq!(events.len(), 1);
    store.close().await?;
    assert_eq!(format_version(dir.path())?, 3);
    let store = LmdbStore::open(dir.path())?;
    assert_eq!(store.read_all(0, 10).await?, events);
    store.close().await?;
    assert_eq!(format_version(dir.path())?, 3);
    Ok(())
}

#[test]
fn foreign_lmdb_environment_is_incompatible() -> TestResult {
    use heed::types::Bytes;
    let dir = tempfile::tempdir()?;
    {
        let env = raw_env(dir.path())?;
        let wtxn = env.write_txn()?;
        env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
            let db: heed::Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("something"))?;
            db.put(wtxn, b"k", b"v")?;
            Ok(heed::CommitOrAbort::<_, ()>::Commit(()))
        })?;
    }
    assert!(matches!(
        LmdbStore::open(dir.path()),
        Err(StoreError::Incompatible(_))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_one_makes_appenders_wait_and_loses_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = es_stores::LmdbOptions::new()
        .queue_capacity(1)
        .max_readers(4)
        .durability(Durability::NoSync {
            sync_interval: None,
        })
        .open(dir.path())?;
    let appends: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &stream(&format!("q-{i}")),
                        ExpectedVersion::NoStream,
                        vec![event(i)],
                    )
                    .await
            })
        })
        .collect();
    for append in appends {
        assert_eq!(append.await??.version, 1);
    }
    // Reads use the few reader slots one after the other.
    for i in 0..64 {
        assert_eq!(store.stream_version(&stream(&format!("q-{i}"))).await?, 1);
    }
    assert_eq!(store.read_all(1, 100).await?.len(), 64);
    Ok(())
}
