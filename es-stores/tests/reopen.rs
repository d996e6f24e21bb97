//! Closing a durable store releases its directory at once: a store reopened right after the
//! last handle was dropped (or closed) never finds it `Locked`, even while another thread of
//! the program keeps spawning child processes (which share a `flock` between fork and exec).
#![cfg(all(feature = "lmdb", feature = "file"))]

mod spawner;

use std::path::Path;
use std::time::Instant;

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use es_stores::{FileStore, LmdbStore};
use spawner::{ChildSpawner, open_lmdb};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Reopens per loop: enough to hit a fork window many times, small enough for ~10 s.
const ROUNDS: u64 = 500;

/// How a loop lets go of the store before reopening it.
#[derive(Debug, Clone, Copy)]
enum Release {
    Drop,
    Close,
}

fn stream() -> StreamId {
    StreamId::new("counter", "c-1")
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Added", format!(r#"{{"n":{n}}}"#).into_bytes())
}

/// Opens, appends one event, lets go and reopens `ROUNDS` times, children spawning meanwhile;
/// then checks every event is there.
async fn reopen_loop<S, O>(
    dir: &Path,
    open: O,
    release: Release,
    close: fn(S) -> Closing,
) -> TestResult
where
    S: EventStore,
    O: Fn(&Path, u64) -> Result<S, StoreError>,
{
    let spawner = ChildSpawner::start();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let store =
            open(dir, round).map_err(|e| format!("round {round}: reopening failed: {e}"))?;
        let done = store
            .append(&stream(), ExpectedVersion::Exact(round), vec![event(round)])
            .await?;
        assert_eq!(done.version, round + 1);
        match release {
            Release::Drop => drop(store),
            Release::Close => close(store).await?,
        }
    }
    let children = spawner.stop()?;
    let store = open(dir, ROUNDS)?;
    let events = store.read_stream(&stream(), 1, usize::MAX).await?;
    assert_eq!(events.len() as u64, ROUNDS);
    assert!(events.iter().zip(1..).all(|(e, s)| e.sequence == s));
    eprintln!(
        "{ROUNDS} reopens ({release:?}) in {:?} while {children} children were spawned",
        started.elapsed()
    );
    assert!(children > 0, "no child process was spawned during the loop");
    Ok(())
}

/// A store's `close`, boxed.
type Closing = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>>>>;

fn close_file(store: FileStore) -> Closing {
    Box::pin(store.close())
}

fn close_lmdb(store: LmdbStore) -> Closing {
    Box::pin(store.close())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_reopens_after_drop_while_children_spawn() -> TestResult {
    let dir = tempfile::tempdir()?;
    reopen_loop(
        dir.path(),
        |dir, _| FileStore::open(dir),
        Release::Drop,
        close_file,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_reopens_after_close_while_children_spawn() -> TestResult {
    let dir = tempfile::tempdir()?;
    reopen_loop(
        dir.path(),
        |dir, _| FileStore::open(dir),
        Release::Close,
        close_file,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmdb_store_reopens_after_drop_while_children_spawn() -> TestResult {
    let dir = tempfile::tempdir()?;
    reopen_loop(dir.path(), open_lmdb, Release::Drop, close_lmdb).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmdb_store_reopens_after_close_while_children_spawn() -> TestResult {
    let dir = tempfile::tempdir()?;
    reopen_loop(dir.path(), open_lmdb, Release::Close, close_lmdb).await
}

#[tokio::test]
async fn closing_one_clone_leaves_the_store_open_for_the_others() -> TestResult {
    // `close` on one clone leaves the others working; the store closes with the last one.
    let dir = tempfile::tempdir()?;
    let store = FileStore::open(dir.path())?;
    let other = store.clone();
    store.close().await?;
    other
        .append(&stream(), ExpectedVersion::NoStream, vec![event(0)])
        .await?;
    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    other.close().await?;
    FileStore::open(dir.path())?;

    let dir = tempfile::tempdir()?;
    let store = LmdbStore::open(dir.path())?;
    let other = store.clone();
    store.close().await?;
    other
        .append(&stream(), ExpectedVersion::NoStream, vec![event(0)])
        .await?;
    other.close().await?;
    let reopened = LmdbStore::open(dir.path())?;
    assert_eq!(reopened.stream_version(&stream()).await?, 1);
    Ok(())
}
