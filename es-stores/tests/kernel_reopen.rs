//! A kernel on a durable store, shut down and dropped, lets the store reopen at once: after
//! `kernel.shutdown().await` no actor holds a store handle any more, so dropping the
//! application's handle closes the store (joins its writer, releases the directory).
//!
//! This depends on the kernel's `shutdown` waiting until its actors have dropped their store
//! handles: otherwise the actors' clones keep the store open after shutdown (the file store is
//! found `Locked` on reopen, the LMDB store is found still open: see `open_lmdb`).
#![cfg(all(feature = "lmdb", feature = "file"))]

mod spawner;

use std::path::Path;
use std::time::Instant;

use es_core::prelude::*;
use es_core::store::{SnapshotStore, StoreError};
use es_stores::FileStore;
use serde::{Deserialize, Serialize};
use spawner::{ChildSpawner, open_lmdb};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ROUNDS: u64 = 500;

/// Count up.
#[derive(Debug, Clone)]
struct Add {
    n: u64,
}

/// Counted up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct Added {
    n: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[aggregate(name = "counter", error = std::convert::Infallible)]
impl Counter {
    #[command]
    fn add(&self, cmd: Add) -> Result<Added, std::convert::Infallible> {
        Ok(Added { n: cmd.n })
    }

    #[apply]
    fn added(&mut self, e: &Added) {
        self.total += e.n;
    }
}

/// Builds a kernel on `store`, dispatches, shuts it down, drops everything and reopens,
/// `ROUNDS` times; children spawn meanwhile.
async fn kernel_loop<S, O>(dir: &Path, open: O) -> TestResult
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone + 'static,
    O: Fn(&Path, u64) -> Result<S, StoreError>,
{
    let spawner = ChildSpawner::start();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let store =
            open(dir, round).map_err(|e| format!("round {round}: reopening failed: {e}"))?;
        let kernel = Kernel::builder()
            .store(store.clone())
            .register::<Counter>()
            .build()?;
        let committed = kernel.dispatch::<Counter>("c-1", Add { n: 1 }).await?;
        assert_eq!(committed.version, round + 1);
        kernel.shutdown().await;
        drop(kernel);
        drop(store);
    }
    let children = spawner.stop()?;
    let store = open(dir, ROUNDS)?;
    let version = store
        .stream_version(&StreamId::new("counter", "c-1"))
        .await?;
    assert_eq!(version, ROUNDS);
    eprintln!(
        "{ROUNDS} kernel rounds in {:?} while {children} children were spawned",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_on_a_file_store_shuts_down_and_the_store_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    kernel_loop(dir.path(), |dir, _| FileStore::open(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_on_an_lmdb_store_shuts_down_and_the_store_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    kernel_loop(dir.path(), open_lmdb).await
}
