//! On-disk format: stores written by an earlier version of `es-stores` (the fixtures under
//! `tests/fixtures/`) still open and read back exactly what was written.
//!
//! Each fixture directory holds the store files and `expected.json`: every event (as
//! `read_all` returned it when the fixture was written), the latest snapshot of each stream
//! and every checkpoint. The tests open a copy of the fixture (opening may repair or create
//! files) and compare.
//!
//! - `file-v1`, `lmdb-v1`: format 1, written before the event envelope (by `write_fixtures` as
//!   it was then, without envelopes). Opening them upgrades the format marker once; their
//!   events read back without ids or tags, and new events appended to them keep their whole
//!   envelope.
//! - `file-v2`, `lmdb-v2`: format 2, written by the `#[ignore]`d test `write_fixtures` below
//!   (events with command, correlation and causation ids, tags, JSON metadata and given
//!   timestamps, next to events without them):
//!   `ES_WRITE_FIXTURES=1 cargo test -p es-stores --test fixtures -- --ignored write_fixtures`.
//! - `lmdb-v3`: format 3 (the stream index written behind the log), written by the same test:
//!   the data file of a store that was still open, whose 7 events are all past `indexed_to`.
//!
//! Never regenerate a fixture to make a failing test pass: a failure means the format changed.
//! A new format gets new fixtures (`-v3`) and keeps the old ones.
#![cfg(all(feature = "lmdb", feature = "file"))]

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use es_core::store::{
    Checkpoint, CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot,
    SnapshotStore, StoreError, StreamId,
};
use es_stores::{FileStore, LmdbStore};
use serde::{Deserialize, Serialize};
use serde_json::json;

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

/// What only a format-2 fixture holds: envelopes, exactly as `fill` gave them.
fn check_envelopes(expected: &Expected) {
    let events = &expected.events;
    let opened = &events[0];
    assert_eq!(opened.command_id(), Some("cmd-1"));
    assert_eq!(opened.correlation_id(), Some("cmd-1"));
    assert_eq!(opened.causation_id(), Some("cmd-1"));
    assert_eq!(opened.tags(), ["vip"]);
    assert_eq!(opened.metadata["ratio"], json!(0.1));
    assert_eq!(opened.metadata["caller"]["roles"], json!(["a", "b"]));
    assert_eq!(opened.timestamp, given_time(981_173_106, 123_456_789));
    let deposited = &events[1];
    assert_eq!(deposited.command_id(), Some("cmd-1"));
    assert_eq!(deposited.correlation_id(), Some("order-42"));
    assert_eq!(deposited.causation_id(), Some("evt-1"));
    assert_eq!(deposited.tags(), ["vip", "eu"]);
    let bare = &events[2];
    assert_eq!(
        (
            bare.command_id(),
            bare.correlation_id(),
            bare.causation_id()
        ),
        (None, None, None)
    );
    assert!(bare.tags().is_empty() && bare.metadata.is_empty());
    assert_eq!(events[3].causation_id(), Some("c"));
    assert_eq!(events[3].command_id(), None);
    assert_eq!(events[4].tags(), ["é"]);
    assert_eq!(events[5].metadata["size"], json!(5));
    assert_eq!(events[6].timestamp, given_time(-1, 999_999_999));
}

fn given_time(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).unwrap_or_else(|| panic!("valid time {secs}.{nanos}"))
}

#[tokio::test]
async fn a_file_store_written_by_an_earlier_version_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("file-v1")?;
    let path = dir.path().join("store");
    assert!(!path.join("format").exists(), "format 1 has no marker");
    reads_back_and_appends(|| FileStore::open(&path), &expected).await?;
    assert_file_format_2_written_once(&path)
}

#[tokio::test]
async fn an_lmdb_store_written_by_an_earlier_version_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("lmdb-v1")?;
    let path = dir.path().join("store");
    assert_eq!(lmdb_format(&path)?, 1, "the fixture is format 1");
    reads_back_and_appends(|| LmdbStore::open(&path), &expected).await?;
    assert_eq!(lmdb_format(&path)?, 3, "opening raised the format");
    drop(LmdbStore::open(&path)?);
    assert_eq!(lmdb_format(&path)?, 3, "and opening again leaves it");
    Ok(())
}

#[tokio::test]
async fn a_file_store_written_by_format_2_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("file-v2")?;
    check_envelopes(&expected);
    let path = dir.path().join("store");
    // The envelope is readable in the log.
    let log = std::fs::read_to_string(path.join("events.jsonl"))?;
    let first = log.lines().next().ok_or("an empty log")?;
    for field in [
        r#""command_id":"cmd-1""#,
        r#""correlation_id":"cmd-1""#,
        r#""causation_id":"cmd-1""#,
        r#""tags":["vip"]"#,
        r#""timestamp":"2001-02-03T04:05:06.123456789Z""#,
        r#""ratio":0.1"#,
    ] {
        assert!(first.contains(field), "{field} in {first}");
    }
    assert_eq!(std::fs::read_to_string(path.join("format"))?, "2\n");
    reads_back_and_appends(|| FileStore::open(&path), &expected).await?;
    assert_file_format_2_written_once(&path)
}

#[tokio::test]
async fn an_lmdb_store_written_by_format_2_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("lmdb-v2")?;
    check_envelopes(&expected);
    let path = dir.path().join("store");
    assert_eq!(lmdb_format(&path)?, 2);
    assert_eq!(
        lmdb_meta_u64(&path, "indexed_to")?,
        None,
        "format 2 indexes each commit"
    );
    reads_back_and_appends(|| LmdbStore::open(&path), &expected).await?;
    assert_eq!(lmdb_format(&path)?, 3, "opening raised the format");
    assert_eq!(lmdb_meta_u64(&path, "indexed_to")?, Some(9));
    Ok(())
}

/// Format 3, as a process that died before writing its stream index left it (the fixture is a
/// copy of the data file of a store that was still open): opening indexes the log's tail.
#[tokio::test]
async fn an_lmdb_store_of_format_3_with_an_unindexed_tail_reads_back_identically() -> TestResult {
    let (dir, expected) = copy_fixture("lmdb-v3")?;
    check_envelopes(&expected);
    let path = dir.path().join("store");
    assert_eq!(lmdb_format(&path)?, 3);
    assert_eq!(
        lmdb_meta_u64(&path, "indexed_to")?,
        Some(0),
        "no event of the fixture is in the stream index"
    );
    reads_back_and_appends(|| LmdbStore::open(&path), &expected).await?;
    assert_eq!(lmdb_format(&path)?, 3);
    assert_eq!(lmdb_meta_u64(&path, "indexed_to")?, Some(9));
    Ok(())
}

/// The file store's `format` file says 2, and opening the store again does not rewrite it.
fn assert_file_format_2_written_once(path: &Path) -> TestResult {
    use std::os::unix::fs::MetadataExt as _;
    let marker = path.join("format");
    assert_eq!(std::fs::read_to_string(&marker)?, "2\n");
    let before = std::fs::metadata(&marker)?;
    drop(FileStore::open(path)?);
    let after = std::fs::metadata(&marker)?;
    assert_eq!(
        (before.ino(), before.mtime(), before.mtime_nsec()),
        (after.ino(), after.mtime(), after.mtime_nsec()),
        "a current marker is not written again"
    );
    Ok(())
}

/// The format version in the meta database of the (closed) LMDB store at `path`.
fn lmdb_format(path: &Path) -> Result<u32, Box<dyn std::error::Error>> {
    let bytes = lmdb_meta(path, "format_version")?.ok_or("no format version")?;
    Ok(u32::from_be_bytes(<[u8; 4]>::try_from(bytes.as_slice())?))
}

/// A big-endian `u64` in the meta database of the (closed) LMDB store at `path`.
fn lmdb_meta_u64(path: &Path, key: &str) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    lmdb_meta(path, key)?
        .map(|bytes| Ok(u64::from_be_bytes(<[u8; 8]>::try_from(bytes.as_slice())?)))
        .transpose()
}

/// The value of `key` in the meta database of the (closed) LMDB store at `path`.
fn lmdb_meta(path: &Path, key: &str) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error>> {
    use heed::types::Bytes;
    // SAFETY: no store has this path open while the test reads it (the store was dropped, which
    // closes it before `drop` returns).
    #[allow(unsafe_code)]
    let env = unsafe { heed::EnvOpenOptions::new().max_dbs(8).open(path)? };
    let rtxn = env.read_txn()?;
    let mut value = None;
    env.open_databases_and_commit(rtxn, |dbo, rtxn| -> heed::Result<_> {
        let meta: Option<heed::Database<'_, Bytes, Bytes>> =
            dbo.open_database(rtxn, Some("meta"))?;
        if let Some(meta) = meta {
            value = meta.get(rtxn, key.as_bytes())?.map(<[u8]>::to_vec);
        }
        Ok(heed::CommitOrAbort::<_, ()>::Commit(()))
    })?;
    Ok(value)
}

/// Checks everything the fixture holds; then appends events with and without an envelope
/// after its events, reopens the store and reads the fixture's events and the new ones back.
async fn reads_back_and_appends<S>(
    open: impl Fn() -> Result<S, StoreError>,
    expected: &Expected,
) -> TestResult
where
    S: EventStore + SnapshotStore + CheckpointStore,
{
    let store = open()?;
    check(&store, expected).await?;
    let stream = StreamId::new("bank_account", "acc-2");
    let new = vec![
        NewEvent::new("Deposited", br#"{"amount":1}"#.to_vec()),
        NewEvent::new("Tagged", br#"{"n":2}"#.to_vec())
            .command_id("cmd-new")
            .correlation_id("order-7")
            .causation_id("cmd-new")
            .tag("late")
            .tag("ü")
            .metadata("attempt", 2)
            .metadata("nested", json!({"x": [1, 2.5, null], "y": {"z": false}}))
            .timestamp(given_time(1_234_567_890, 1)),
    ];
    let done = store
        .append(&stream, ExpectedVersion::Exact(1), new.clone())
        .await?;
    assert_eq!((done.version, done.events[0].position), (3, 8));
    assert_eq!(done.events[1].command_id(), Some("cmd-new"));
    drop(store);

    let store = open()?;
    let mut all = expected.events.clone();
    all.extend(done.events.iter().cloned());
    assert_eq!(store.read_all(1, 100).await?, all, "old and new events");
    let mine: Vec<RecordedEvent> = all.iter().filter(|e| e.stream == stream).cloned().collect();
    assert_eq!(store.read_stream(&stream, 1, 100).await?, mine);
    let back = &mine[mine.len() - 1];
    assert_eq!(back.tags(), ["late", "ü"]);
    assert_eq!(back.metadata, new[1].envelope.metadata);
    assert_eq!(back.timestamp, given_time(1_234_567_890, 1));
    Ok(())
}

/// Writes the fixtures' content into `store` and returns what it holds: the events of format 1
/// and, on top, the envelopes of format 2 (see `check_envelopes`).
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
                )
                .command_id("cmd-1")
                .correlation_id("cmd-1")
                .causation_id("cmd-1")
                .tag("vip")
                .metadata("attempt", 1)
                .metadata("ratio", 0.1)
                .metadata(
                    "caller",
                    json!({"ip": "10.0.0.1", "roles": ["a", "b"], "big": u64::MAX, "neg": -7}),
                )
                .timestamp(given_time(981_173_106, 123_456_789)),
                NewEvent::new("Deposited", br#"{"amount":100}"#.to_vec())
                    .command_id("cmd-1")
                    .correlation_id("order-42")
                    .causation_id("evt-1")
                    .tag("vip")
                    .tag("eu"),
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
            vec![
                NewEvent::new("Withdrawn", br#"{"amount":30}"#.to_vec())
                    .version(2)
                    .causation_id("c"),
            ],
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
                )
                .tag("é"),
                with_metadata(
                    NewEvent::new("Blob", vec![0, 159, 146, 150, 255]),
                    &[("content-type", "application/octet-stream")],
                )
                .metadata("size", 5),
            ],
        )
        .await?;
    store
        .append(
            &acc1,
            ExpectedVersion::Exact(3),
            vec![
                NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())
                    .command_id("cmd-5")
                    .timestamp(given_time(-1, 999_999_999)),
            ],
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

/// Writes the format-2 fixtures into empty directories (run by hand, see the module docs; the
/// lock files are left out).
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

    // Fixtures are written once: this code writes the file store's format 2 and the LMDB
    // store's format 3; the others are never rewritten.
    let dir = fixture_dir("lmdb-v3");
    if !dir.exists() {
        // The data file of a store still open, as a process killed at this point leaves it:
        // every append is answered, so committed and flushed; the stream index is not written
        // yet (the default `index_batch` is far above the fixture's 7 events).
        let store = LmdbStore::options().map_size(256 << 10).open(&dir)?;
        let expected = fill(&store).await?;
        let copy = tempfile::tempdir()?;
        std::fs::copy(dir.join("data.mdb"), copy.path().join("data.mdb"))?;
        drop(store);
        for file in ["data.mdb", "lock.mdb", "es-store.lock"] {
            std::fs::remove_file(dir.join(file))?;
        }
        std::fs::copy(copy.path().join("data.mdb"), dir.join("data.mdb"))?;
        write(&dir, &expected)?;
    }
    if fixture_dir("file-v2").exists() || fixture_dir("lmdb-v2").exists() {
        return Ok(());
    }
    let dir = fixture_dir("file-v2");
    let store = FileStore::open(&dir)?;
    let expected = fill(&store).await?;
    drop(store);
    std::fs::remove_file(dir.join("LOCK"))?;
    write(&dir, &expected)?;

    let dir = fixture_dir("lmdb-v2");
    let store = LmdbStore::options().map_size(256 << 10).open(&dir)?;
    let expected = fill(&store).await?;
    drop(store);
    for lock in ["lock.mdb", "es-store.lock"] {
        std::fs::remove_file(dir.join(lock))?;
    }
    write(&dir, &expected)?;
    Ok(())
}
