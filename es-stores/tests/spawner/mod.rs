//! A thread that keeps spawning short-lived child processes, as a busy program does, so that
//! tests can check that nothing a store holds leaks into children.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

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
