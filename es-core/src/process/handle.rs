//! [`ProcessHandle`]: a running process manager's position, instances and status.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::projection::ProjectionError;

use super::ProcessManager;
use super::status::{ProcessStatus, Shared};

/// A running process manager.
pub struct ProcessHandle<P> {
    shared: Arc<Shared>,
    _p: PhantomData<fn() -> P>,
}

impl<P> ProcessHandle<P> {
    /// A handle on the runner that shares `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            _p: PhantomData,
        }
    }
}

impl<P> Clone for ProcessHandle<P> {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone())
    }
}

impl<P> std::fmt::Debug for ProcessHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("status", &self.shared.status())
            .finish()
    }
}

impl<P: ProcessManager> ProcessHandle<P> {
    /// Waits until every event up to `position` was handled and the commands they caused were
    /// answered (and their rejections handled).
    ///
    /// # Errors
    ///
    /// [`ProjectionError::Stopped`] when the runner stops before reaching `position`.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionError> {
        self.shared
            .progress
            .wait_for(position)
            .await
            .map_err(|ended| ProjectionError::stopped(P::NAME, ended))
    }

    /// How many instances are live (started and not finished).
    pub async fn instances(&self) -> usize {
        self.shared.instances.load(Ordering::Relaxed)
    }

    /// How many deadlines of the live instances are pending (scheduled, not yet fired,
    /// cancelled or dropped with their instance).
    pub fn pending_deadlines(&self) -> usize {
        self.shared.deadlines.load(Ordering::Relaxed)
    }

    /// The runner's status.
    pub fn status(&self) -> ProcessStatus {
        self.shared.status()
    }

    /// The last position handled.
    pub fn position(&self) -> u64 {
        self.shared.progress.position()
    }

    /// Stops the runner and waits for it: commands in flight are answered first; what was
    /// handled since the last checkpoint is handled again (with the same command ids) by the
    /// next runner.
    pub async fn stop(&self) {
        self.shared.progress.stop().await;
    }
}
