//! Leases: the right to run one named runner among the processes sharing a store.

use std::fmt;

use std::time::Duration;

use tokio::sync::{oneshot, watch};

/// The longest [`RunnerLease::release`] waits for the store to confirm.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The answer to [`CheckpointStore::try_lease`](crate::store::CheckpointStore::try_lease).
pub enum Lease {
    /// The store is not shared between processes (or does not elect runners): run.
    NotNeeded,
    /// Another process runs this runner: stand by and ask again.
    HeldElsewhere,
    /// This process may run it while the lease lasts.
    Acquired(RunnerLease),
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lease::NotNeeded => "NotNeeded",
            Lease::HeldElsewhere => "HeldElsewhere",
            Lease::Acquired(_) => "Acquired",
        })
    }
}

/// The exclusive right to run one named runner among the processes sharing a store (on
/// PostgreSQL, an advisory lock held by a dedicated connection). Dropping it releases the right;
/// a process that dies releases it with its connection.
pub struct RunnerLease {
    lost: watch::Receiver<bool>,
    /// `None` once given up.
    holder: Option<Box<dyn Send + Sync>>,
    /// Fires (or is dropped) once the store has given the right up, when it does so after the
    /// holder is dropped (see [`RunnerLease::confirmed_by`]).
    released: Option<oneshot::Receiver<()>>,
}

impl RunnerLease {
    /// A lease kept by `holder` (dropped to release it); `lost` turns `true` when the store
    /// can no longer vouch for it (the connection that holds it failed).
    pub fn new(lost: watch::Receiver<bool>, holder: impl Send + Sync + 'static) -> Self {
        Self {
            lost,
            holder: Some(Box::new(holder)),
            released: None,
        }
    }

    /// For a store that gives the right up after the holder is dropped (in a task of its own,
    /// over the network): `released` fires, or its sender is dropped, once it is given up, and
    /// [`RunnerLease::release`] waits for it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use es_core::store::RunnerLease;
    ///
    /// let (_lost_tx, lost) = tokio::sync::watch::channel(false);
    /// let (release, mut holder_dropped) = tokio::sync::oneshot::channel::<()>();
    /// let (done, released) = tokio::sync::oneshot::channel();
    /// // The store's side: gives the right up once the holder (`release`) is dropped.
    /// tokio::spawn(async move {
    ///     let _ = (&mut holder_dropped).await;
    ///     // ... unlock on the server here ...
    ///     let _ = done.send(());
    /// });
    /// let lease = RunnerLease::new(lost, release).confirmed_by(released);
    /// lease.release().await; // returns once the store's side is done
    /// # }
    /// ```
    pub fn confirmed_by(mut self, released: oneshot::Receiver<()>) -> Self {
        self.released = Some(released);
        self
    }

    /// Gives the right up, and returns once the store has (for a lease made with
    /// [`RunnerLease::confirmed_by`]; waiting at most 5 seconds, after which the store finishes
    /// on its own). Dropping the lease gives it up too, without waiting.
    pub async fn release(mut self) {
        drop(self.holder.take());
        if let Some(released) = self.released.take() {
            let _ = tokio::time::timeout(RELEASE_WAIT, released).await;
        }
    }

    /// Whether the lease was lost: the runner must stop running (another process may have
    /// taken over).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}
