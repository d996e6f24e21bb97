//! Leases: the right to run one named runner among the processes sharing a store.

use std::fmt;

use tokio::sync::watch;

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
    _holder: Box<dyn Send + Sync>,
}

impl RunnerLease {
    /// A lease kept by `holder` (dropped to release it); `lost` turns `true` when the store
    /// can no longer vouch for it (the connection that holds it failed).
    pub fn new(lost: watch::Receiver<bool>, holder: impl Send + Sync + 'static) -> Self {
        Self {
            lost,
            _holder: Box::new(holder),
        }
    }

    /// Whether the lease was lost: the runner must stop running (another process may have
    /// taken over).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}
