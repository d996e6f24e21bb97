//! Crash safety: a child process writes through an LmdbStore and reports every acknowledged
//! append on stdout; the parent SIGKILLs it mid-stream, reopens the store and checks that every
//! acknowledged event is there, that sequences and positions are gapless, and that the store
//! accepts new writes. Several iterations reuse one store directory.
//!
//! The child is this test binary, re-invoked with `ES_LMDB_CRASH_CHILD=<dir>` to run
//! `crash_child`, which does nothing in a normal test run.
#![cfg(feature = "lmdb")]

mod crash_common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError,
    StreamId,
};
use es_stores::{Durability, LmdbStore};

const CHILD_ENV: &str = "ES_LMDB_CRASH_CHILD";
const DURABILITY_ENV: &str = "ES_LMDB_CRASH_DURABILITY";
const INDEX_BATCH_ENV: &str = "ES_LMDB_CRASH_INDEX_BATCH";
use crash_common::MARK;
const WRITERS: u64 = 8;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn stream(n: u64) -> StreamId {
    StreamId::new("crash", format!("s-{n}"))
}

/// The child: appends forever from several tasks, printing `@@ack stream version position` after
/// each acknowledged append.
#[test]
fn crash_child() -> TestResult {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("nosync") => Durability::NoSync {
            sync_interval: None,
        },
        _ => Durability::Durable,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut options = LmdbStore::options().durability(durability);
        if let Ok(events) = std::env::var(INDEX_BATCH_ENV) {
            options = options.index_batch(events.parse()?);
        }
        let store = options.open(&dir)?;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let s = stream(w);
                let mut version = store.stream_version(&s).await?;
                let mut i = 0u64;
                loop {
                    i += 1;
                    let count = 1 + (i + w) % 3;
                    let events = (0..count)
                        .map(|k| {
                            NewEvent::new("Tick", format!("{{\"w\":{w},\"k\":{k}}}").into_bytes())
                                .metadata("writer", w.to_string())
                        })
                        .collect();
                    let done = store
                        .append(&s, ExpectedVersion::Exact(version), events)
                        .await?;
                    version = done.version;
                    let position = done.last_position().unwrap_or(0);
                    {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{MARK} {w} {version} {position}")
                            .and_then(|()| out.flush())
                            .map_err(|e| StoreError::io("stdout", e))?;
                    }
                    if i.is_multiple_of(10) {
                        SnapshotStore::save(
                            &store,
                            Snapshot::new(s.clone(), version, version.to_string()),
                        )
                        .await?;
                        store.prune(&s, 2).await?;
                        CheckpointStore::save(
                            &store,
                            &format!("p-{w}"),
                            position,
                            Some(position.to_string().into_bytes()),
                        )
                        .await?;
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), StoreError>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// One acknowledged append, as the child reported it.
struct Ack {
    writer: u64,
    version: u64,
    position: u64,
}

/// Runs the child until it has acknowledged `kill_after` appends, SIGKILLs it, and returns every
/// acknowledgement it printed. While the child runs, this process must be refused the store.
fn run_and_kill(
    dir: &Path,
    durability: &str,
    index_batch: &str,
    kill_after: usize,
) -> Result<Vec<Ack>, Box<dyn std::error::Error>> {
    let dir_str = dir.to_str().ok_or("non-UTF-8 temp dir")?;
    let acks = crash_common::run_and_kill(
        "crash_child",
        &[
            (CHILD_ENV, dir_str),
            (DURABILITY_ENV, durability),
            (INDEX_BATCH_ENV, index_batch),
        ],
        kill_after,
        |count| {
            if count == 5 {
                match LmdbStore::open(dir) {
                    Err(StoreError::Locked(_)) => {}
                    other => return Err(format!("expected Locked, got {other:?}").into()),
                }
            }
            Ok(())
        },
    )?;
    Ok(acks
        .into_iter()
        .map(|[writer, version, position]| Ack {
            writer,
            version,
            position,
        })
        .collect())
}

/// Reopens the store after a crash and checks it against the acknowledgements.
async fn verify(dir: &Path, acks: &[Ack]) -> TestResult {
    let store = LmdbStore::open(dir)?;
    let head = store.head_position().await?;
    let all = store.read_all(1, usize::MAX).await?;
    assert_eq!(all.len() as u64, head, "head position matches the log");
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position, i as u64 + 1, "positions are gapless");
        let v = versions.entry(event.stream.clone()).or_default();
        *v += 1;
        assert_eq!(
            event.sequence, *v,
            "sequences of {} are gapless",
            event.stream
        );
    }
    for (s, v) in &versions {
        assert_eq!(store.stream_version(s).await?, *v, "stream head of {s}");
    }
    for ack in acks {
        let s = stream(ack.writer);
        let got = store.read_stream(&s, ack.version, 1).await?;
        let event = got.first().ok_or_else(|| {
            format!(
                "acknowledged event {s} version {} (position {}) is missing",
                ack.version, ack.position
            )
        })?;
        assert_eq!(event.position, ack.position, "acknowledged position of {s}");
    }
    for w in 0..WRITERS {
        if let Some(snapshot) = store.load_latest(&stream(w)).await? {
            assert_eq!(snapshot.state, snapshot.version.to_string().into_bytes());
        }
        if let Some(checkpoint) = CheckpointStore::load(&store, &format!("p-{w}")).await? {
            assert!(checkpoint.position <= head);
        }
    }
    // The store takes new writes after the crash.
    let s = stream(1000);
    let version = store.stream_version(&s).await?;
    let done = store
        .append(
            &s,
            ExpectedVersion::Exact(version),
            vec![NewEvent::new("AfterCrash", b"{}".to_vec())],
        )
        .await?;
    assert_eq!(done.events[0].position, head + 1);
    Ok(())
}

/// Four crashes of children opening the store with `durability` and `index_batch` (see
/// `LmdbOptions::index_batch`), each checked after a reopen.
fn crash_iterations(durability: &str, index_batch: &str) -> TestResult {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut total = 0;
    for iteration in 0..4 {
        let acks = run_and_kill(dir.path(), durability, index_batch, 100 + iteration * 173)?;
        assert!(
            !acks.is_empty(),
            "iteration {iteration}: no acknowledgements"
        );
        total += acks.len();
        runtime.block_on(verify(dir.path(), &acks))?;
    }
    assert!(total >= 400);
    Ok(())
}

#[test]
fn sigkill_loses_no_acknowledged_write_durable() -> TestResult {
    crash_iterations("durable", "65536")
}

#[test]
fn sigkill_loses_no_acknowledged_write_nosync() -> TestResult {
    crash_iterations("nosync", "65536")
}

/// The index written behind the log in batches of 37 events: the children crash between
/// flushes, after some, and (with groups of several appends) in the middle of a group that
/// flushes; reopening indexes what the last flush left out.
#[test]
fn sigkill_with_the_index_written_in_small_batches_loses_nothing() -> TestResult {
    crash_iterations("durable", "37")
}

/// The index written in every commit (`index_batch(0)`), as format 2 did.
#[test]
fn sigkill_with_the_index_written_in_each_commit_loses_nothing() -> TestResult {
    crash_iterations("durable", "0")
}
