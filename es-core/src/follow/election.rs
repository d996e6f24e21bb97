//! A runner's part in electing one active runner per name among the processes sharing a
//! checkpoint store ([`CheckpointStore::try_lease`]; on PostgreSQL an advisory lock).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{CheckpointStore, Lease, RunnerLease};

use super::gate::ShareGate;
use super::progress::Progress;
use super::retry::pause_unless_stopped;

/// How often a standby runner asks for the lease.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(500);

/// One runner's election. Projection and process-manager runners both hold one, named after
/// their checkpoint (a process manager's checkpoint name is prefixed `process:`, so the two
/// kinds never share a lease).
pub(crate) struct Election {
    /// The lease name: the runner's checkpoint name.
    name: String,
    /// The right to run, while this runner holds it.
    lease: Option<RunnerLease>,
    /// Whether the store elects runners (`None`: not asked yet).
    elects: Option<bool>,
    /// The share of its group's leases this process may hold (a partition of a runner).
    gate: Option<Arc<ShareGate>>,
}

/// What [`Election::wait_until_elected`] found.
pub(crate) enum Elected {
    /// The store elects no runner (it is not shared between processes): run as always.
    NotNeeded,
    /// This runner just took the lease: it must resume from the checkpoint the previous
    /// holder saved, dropping whatever it handled but did not save.
    TookOver,
}

impl Election {
    /// An election for the runner whose checkpoint is `name`.
    pub(crate) fn new(name: impl Into<String>, gate: Option<Arc<ShareGate>>) -> Self {
        Self {
            name: name.into(),
            lease: None,
            elects: None,
            gate,
        }
    }

    /// Gives the lease up when this process holds more than its share of the group's leases
    /// (another process joined); the runner stands by next. Call it between pages, after the
    /// last page's checkpoint was saved.
    pub(crate) fn yield_if_over_share(&mut self, progress: &Progress) {
        let Some(gate) = &self.gate else { return };
        if self.lease.as_ref().is_some_and(|l| !l.is_lost()) && gate.try_yield() {
            self.lease = None;
            tracing::info!(runner = %self.name, "giving the runner lease up to another process");
            progress.set_standby(true);
        }
    }

    /// Gives the lease up, if held, and returns once the store has (the runner is stopping:
    /// another process, or a tool that waits for the lease, may take it as soon as this
    /// returns).
    pub(crate) async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
    }

    /// Whether the runner may go on without asking (no await, so it can be checked every
    /// batch): its store elects no runner, or it holds a lease that is not lost. A runner that
    /// may not run must not save its checkpoint either (another process may hold the lease,
    /// and its checkpoint wins).
    pub(crate) fn may_run(&self) -> bool {
        match &self.lease {
            Some(lease) => !lease.is_lost(),
            None => self.elects == Some(false),
        }
    }

    /// Waits, as a standby, until the runner may run: asks `store` for the lease every
    /// [`STANDBY_POLL`] while another process holds it (or the store cannot be asked), saying
    /// so in `progress` while it waits. A lost lease is given up first. Returns `Err(())` when
    /// a stop is requested while standing by. Call it when [`Election::may_run`] is false.
    pub(crate) async fn wait_until_elected(
        &mut self,
        store: &dyn CheckpointStore,
        stop: &watch::Receiver<bool>,
        progress: &Progress,
    ) -> Result<Elected, ()> {
        if self.lease.take().is_some() {
            if let Some(gate) = &self.gate {
                gate.released();
            }
            tracing::warn!(runner = %self.name, "lost the runner lease; standing by");
            progress.set_standby(true);
        }
        loop {
            if let Some(gate) = &self.gate
                && self.elects == Some(true)
                && !gate.may_acquire()
            {
                // This process holds its share: leave this lease to another one.
                progress.set_standby(true);
                if pause_unless_stopped(stop, STANDBY_POLL).await {
                    return Err(());
                }
                continue;
            }
            match store.try_lease(&self.name).await {
                Ok(Lease::NotNeeded) => {
                    self.elects = Some(false);
                    return Ok(Elected::NotNeeded);
                }
                Ok(Lease::Acquired(lease)) => {
                    self.elects = Some(true);
                    self.lease = Some(lease);
                    if let Some(gate) = &self.gate {
                        gate.acquired();
                    }
                    tracing::info!(runner = %self.name, "holding the runner lease");
                    return Ok(Elected::TookOver);
                }
                Ok(Lease::HeldElsewhere) => {
                    self.elects = Some(true);
                    progress.set_standby(true);
                }
                Err(e) => {
                    tracing::warn!(runner = %self.name, error = %e, "asking for the runner lease failed");
                    progress.set_standby(true);
                }
            }
            if pause_unless_stopped(stop, STANDBY_POLL).await {
                return Err(());
            }
        }
    }
}
