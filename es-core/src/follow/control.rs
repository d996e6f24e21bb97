//! [`Control`]: what a runner asks of its follower while it handles events: whether to stop,
//! a pause that a stop cuts short, whether it may save, and its checkpoint, loaded and saved
//! under the retry policy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{Checkpoint, CheckpointStore};

use super::election::{Elected, Election};
use super::gate::ShareGate;
use super::progress::Progress;
use super::retry::{End, pause_unless_stopped, retrying};

/// A runner's stop signal, checkpoint and lease.
pub(crate) struct Control {
    /// The checkpoint's name, which is also the lease's and the name in the log.
    name: String,
    /// Where the checkpoint is kept (`None`: positions in memory only).
    store: Option<Arc<dyn CheckpointStore>>,
    /// Its part in electing one active runner per name among the processes sharing its
    /// checkpoint store (`None` without a checkpoint store).
    election: Option<Election>,
    stop: watch::Receiver<bool>,
}

impl Control {
    /// The control of the runner whose checkpoint `name` is kept in `store`.
    pub(super) fn new(
        name: String,
        store: Option<Arc<dyn CheckpointStore>>,
        stop: watch::Receiver<bool>,
        gate: Option<Arc<ShareGate>>,
    ) -> Self {
        Self {
            election: store.as_ref().map(|_| Election::new(name.clone(), gate)),
            name,
            store,
            stop,
        }
    }

    /// The checkpoint's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether a stop was requested.
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The stop signal, to wait on.
    pub(super) fn stop_signal(&self) -> &watch::Receiver<bool> {
        &self.stop
    }

    /// Sleeps, returning `true` if a stop was requested meanwhile.
    pub(crate) async fn pause(&self, wait: Duration) -> bool {
        pause_unless_stopped(&self.stop, wait).await
    }

    /// Gives the runner's lease up, if it holds one, and returns once the store has.
    pub(super) async fn release_lease(&mut self) {
        if let Some(election) = &mut self.election {
            election.release().await;
        }
    }

    /// Whether the runner keeps a checkpoint (it has a checkpoint store).
    pub(crate) fn keeps_checkpoints(&self) -> bool {
        self.store.is_some()
    }

    /// Whether the runner may save its checkpoint: its store elects no runner, or it holds its
    /// lease. After losing it, another process may hold the lease and have saved further: that
    /// checkpoint wins, and what this runner handled since is neither saved nor published.
    pub(crate) fn may_save(&self) -> bool {
        self.election.as_ref().is_none_or(Election::may_run)
    }

    /// Saves the checkpoint at `position` (with `state`), retrying failures: a save is an
    /// idempotent upsert, so a lost connection or an unknown outcome is simply written again.
    /// Without a checkpoint store there is nothing to save.
    pub(crate) async fn save(&self, position: u64, state: Option<Vec<u8>>) -> Result<(), End> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        retrying(
            &self.name,
            || format!("saving the checkpoint at {position}"),
            &self.stop,
            || store.save(&self.name, position, state.clone()),
        )
        .await
    }

    /// Loads the checkpoint after taking the lease over, retrying failures.
    pub(super) async fn load(&self) -> Result<Option<Checkpoint>, End> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        retrying(
            &self.name,
            || "loading the checkpoint after taking the lease".to_owned(),
            &self.stop,
            || store.load(&self.name),
        )
        .await
    }

    /// Makes sure the runner may run. On a checkpoint store that elects one runner per name
    /// among processes (PostgreSQL), waits as a standby until it holds the lease; other stores
    /// cost one check per batch. `None`: it may go on as it was; else what the election found.
    pub(super) async fn ensure_lease(
        &mut self,
        progress: &Progress,
    ) -> Result<Option<Elected>, End> {
        let (Some(election), Some(store)) = (self.election.as_mut(), self.store.as_ref()) else {
            return Ok(None);
        };
        election.yield_if_over_share(progress);
        if election.may_run() {
            return Ok(None);
        }
        match election
            .wait_until_elected(store.as_ref(), &self.stop, progress)
            .await
        {
            Ok(elected) => Ok(Some(elected)),
            Err(()) => Err(End::Stopped),
        }
    }
}
