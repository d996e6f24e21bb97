//! Helpers of the reopen tests: a thread that keeps spawning short-lived child processes, as a
//! busy program does, so that tests can check that nothing a store holds leaks into children;
//! and an LMDB opener that proves the previous round's store closed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use es_core::store::StoreError;
use es_stores::LmdbStore;

/// Spawns `true` in a loop until stopped (or dropped).
pub struct ChildSpawner {
    stop: Arc<AtomicBool>,
    spawned: Arc<AtomicU64>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl ChildSpawner {
    /// Starts the spawning thread.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let spawned = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            let spawned = Arc::clone(&spawned);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    Command::new("true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()?;
                    spawned.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        });
        Self {
            stop,
            spawned,
            thread: Some(thread),
        }
    }

    /// Stops the thread and returns how many children it spawned.
    pub fn stop(mut self) -> Result<u64, Box<dyn std::error::Error>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| "the spawning thread panicked")??;
        }
        Ok(self.spawned.load(Ordering::Relaxed))
    }
}

impl Drop for ChildSpawner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens the LMDB store with a map size of its own for `round`: opening a path this process
/// still has open would share that store (with its map size), so a different size proves the
/// store of the previous round closed.
pub fn open_lmdb(dir: &Path, round: u64) -> Result<LmdbStore, StoreError> {
    let map_size = (1 << 20) + usize::try_from(round).unwrap_or(0) * (64 << 10);
    let store = LmdbStore::options().map_size(map_size).open(dir)?;
    if store.map_size() != map_size {
        return Err(StoreError::Locked(format!(
            "got the store of an earlier round, still open (map size {})",
            store.map_size()
        )));
    }
    Ok(store)
}
