//! [`ProjectionHandle`]: a running projection's state, position and status.

use std::sync::Arc;

use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::options::ProjectionStatus;
use super::parking;
use super::read_model::Projection;
use super::shared::{Shared, status_of};

/// A handle on a running projection.
pub struct ProjectionHandle<P> {
    pub(super) shared: Arc<Shared<P>>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// A copy of the current state. On a standby it is the state this runner last loaded or
    /// processed (it may include a batch it processed but could not save after losing its
    /// lease; taking over reloads the checkpoint).
    pub async fn state(&self) -> P
    where
        P: Clone,
    {
        self.shared.state.lock().await.clone()
    }

    /// Runs `f` on the current state without copying it.
    pub async fn with_state<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        f(&*self.shared.state.lock().await)
    }

    /// The last position processed.
    pub fn position(&self) -> u64 {
        self.shared.progress.position()
    }

    /// Waits until the runner has processed `position` (read-your-writes after a dispatch).
    /// Fails if the runner stops first.
    ///
    /// A standby ([`ProjectionStatus::standby`]: another process sharing the checkpoint store
    /// runs this projection) is not caught up: it returns at once only for positions up to the
    /// checkpoint it last loaded, and otherwise waits until this runner has taken over and
    /// processed `position` itself. It does not follow the other process's progress; wrap it
    /// in a timeout where the other process's work is enough.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionError> {
        self.shared
            .progress
            .wait_for(position)
            .await
            .map_err(|ended| ProjectionError::stopped(self.shared.name, ended))
    }

    /// Its dead letters, parked and skipped, in the order they were parked (see
    /// [`Projections::dead_letters`](super::Projections::dead_letters)).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.parked.lock().list()
    }

    /// Re-runs the parked events of `key` in order; see
    /// [`Projections::retry`](super::Projections::retry).
    pub async fn retry(&self, key: &str) -> Result<usize, ProjectionError> {
        parking::retry(&self.shared, key).await
    }

    /// Drops the parked event of `key` at `position`, keeping `reason`; see
    /// [`Projections::skip`](super::Projections::skip).
    pub async fn skip(
        &self,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        parking::skip(&self.shared, key, position, reason).await
    }

    /// The runner's status.
    pub fn status(&self) -> ProjectionStatus {
        status_of(&self.shared)
    }

    /// Stops the runner after the event it is handling (what it handled is checkpointed) and
    /// waits for it; its status then says [`ProjectionPhase::Stopped`](crate::projection::ProjectionPhase::Stopped). Stopping a stopped
    /// runner does nothing.
    pub async fn stop(&self) -> Result<(), ProjectionError> {
        self.shared.progress.stop().await;
        Ok(())
    }
}
