//! [`ProcessHandle`]: a running process manager's position, instances and status.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::projection::{DeadLetter, ProjectionError};

use super::requests::Ask;

use super::ProcessManager;
use super::group::Group;
use super::status::ProcessStatus;

/// A running process manager.
pub struct ProcessHandle<P> {
    group: Arc<Group>,
    _p: PhantomData<fn() -> P>,
}

impl<P> ProcessHandle<P> {
    /// A handle on the runners of `group`.
    pub(crate) fn new(group: Arc<Group>) -> Self {
        Self {
            group,
            _p: PhantomData,
        }
    }
}

impl<P> Clone for ProcessHandle<P> {
    fn clone(&self) -> Self {
        Self::new(self.group.clone())
    }
}

impl<P> std::fmt::Debug for ProcessHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("status", &self.group.status())
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
        for part in &self.group.parts {
            part.progress
                .wait_for(position)
                .await
                .map_err(|ended| ProjectionError::stopped(&part.name, ended))?;
        }
        Ok(())
    }

    /// How many instances are live (started and not finished).
    pub async fn instances(&self) -> usize {
        self.group.instances()
    }

    /// How many deadlines of the live instances are pending (scheduled, not yet fired,
    /// cancelled or dropped with their instance).
    pub fn pending_deadlines(&self) -> usize {
        self.group.deadlines()
    }

    /// The runner's status.
    pub fn status(&self) -> ProcessStatus {
        self.group.status()
    }

    /// The last position handled.
    pub fn position(&self) -> u64 {
        self.group.position()
    }

    /// Its dead letters under [`ErrorPolicy::Park`](crate::projection::ErrorPolicy::Park),
    /// parked and skipped, by position; see
    /// [`ProcessManagers::dead_letters`](super::ProcessManagers::dead_letters).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.group.dead_letters()
    }

    /// Re-runs the parked events of instance `key` in order; see
    /// [`ProcessManagers::retry`](super::ProcessManagers::retry).
    pub async fn retry(&self, key: &str) -> Result<usize, ProjectionError> {
        self.group.ask(key, Ask::Retry(key.to_owned())).await
    }

    /// Drops the parked event of instance `key` at `position`, keeping `reason`; see
    /// [`ProcessManagers::skip`](super::ProcessManagers::skip).
    pub async fn skip(
        &self,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        let ask = Ask::Skip {
            key: key.to_owned(),
            position,
            reason: reason.to_owned(),
        };
        self.group.ask(key, ask).await.map(|_| ())
    }

    /// Stops the runner and waits for it: commands in flight are answered first; what was
    /// handled since the last checkpoint is handled again (with the same command ids) by the
    /// next runner.
    pub async fn stop(&self) {
        self.group.stop().await;
    }
}
