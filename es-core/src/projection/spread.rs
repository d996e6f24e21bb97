//! Spreading a projection's partitions over the processes that run it, on a checkpoint store
//! that elects runners (PostgreSQL).
//!
//! Each partition is a runner with its own lease (`name#i/n`), so a partition runs in one
//! process at a time and is taken over, from its checkpoint, when that process dies. To share
//! them out, each process also holds a *member* lease, the first free one of `name#member/k`
//! for `k` in `0..n`, and counts the processes running the projection as the member leases it
//! sees held (read in one query where the store can say, else by probes that release a free
//! slot at once). Every [`MEMBER_POLL`] it sets its share to `n / processes`, plus one for the
//! `n % processes` processes with the lowest member slots (so the shares add up to `n`): its
//! partition runners ask for their leases only while it holds fewer, and give leases up
//! (between pages, after a checkpoint) while it holds more.
//! A process that joins thus gets a share within a few polls, and the partitions of one that
//! dies (its leases end with its connections) are taken by the others within about a second.
//! Processes beyond `n` hold no member lease and no partition, and stand by.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::follow::ShareGate;
use crate::store::{CheckpointStore, Lease, RunnerLease};
use crate::tracker::TaskToken;

/// How often a process counts the processes running the projection.
pub(super) const MEMBER_POLL: Duration = Duration::from_millis(400);

/// Stops the spreading task of a group.
pub(crate) struct SpreadHandle {
    stop: watch::Sender<bool>,
}

impl SpreadHandle {
    /// Ends the task (it releases its member lease).
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Starts spreading the `partitions` partitions of `name` over the processes sharing `store`;
/// the partition runners share `gate`. Returns its handle.
pub(super) fn spawn(
    runtime: &tokio::runtime::Handle,
    store: Arc<dyn CheckpointStore>,
    name: &str,
    partitions: u32,
    gate: Arc<ShareGate>,
    token: TaskToken,
) -> SpreadHandle {
    let (stop, stopped) = watch::channel(false);
    let task = Spread {
        store,
        name: name.to_owned(),
        partitions: partitions as usize,
        gate,
        stopped,
        member: None,
        _token: token,
    };
    runtime.spawn(task.run());
    SpreadHandle { stop }
}

/// [`spawn`] for a runner whose tasks the kernel does not track (a process manager's).
pub(crate) fn spawn_untracked(
    runtime: &tokio::runtime::Handle,
    store: Arc<dyn CheckpointStore>,
    name: &str,
    partitions: u32,
    gate: Arc<ShareGate>,
) -> SpreadHandle {
    spawn(
        runtime,
        store,
        name,
        partitions,
        gate,
        crate::tracker::TaskTracker::default().token(),
    )
}

struct Spread {
    store: Arc<dyn CheckpointStore>,
    name: String,
    partitions: usize,
    gate: Arc<ShareGate>,
    stopped: watch::Receiver<bool>,
    /// This process's member lease, and its slot.
    member: Option<(usize, RunnerLease)>,
    /// Declared last, so it is released after the store.
    _token: TaskToken,
}

impl Spread {
    fn slot(&self, k: usize) -> String {
        format!("{}#member/{k}", self.name)
    }

    /// Spreads until stopped, then gives the member lease up (returning once the store has).
    async fn run(mut self) {
        self.spread().await;
        if let Some((_, lease)) = self.member.take() {
            lease.release().await;
        }
    }

    async fn spread(&mut self) {
        loop {
            match self.count().await {
                Ok(Some((processes, rank))) => {
                    let processes = processes.max(1);
                    let share = self.partitions / processes
                        + usize::from(rank < self.partitions % processes);
                    let share = if self.member.is_some() { share } else { 0 };
                    self.gate.set_share(share);
                }
                // The store elects no runner: every partition runs here.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(projection = %self.name, error = %e, "counting the processes running a partitioned projection failed");
                }
            }
            let mut stopped = self.stopped.clone();
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                () = tokio::time::sleep(MEMBER_POLL) => {}
            }
        }
    }

    /// Takes a member lease if this process has none, and counts the processes holding one
    /// (this one included), with how many of them hold a lower slot than this one. `None`: the
    /// store elects no runner.
    async fn count(&mut self) -> Result<Option<(usize, usize)>, crate::store::StoreError> {
        if self
            .member
            .as_ref()
            .is_some_and(|(_, lease)| lease.is_lost())
        {
            self.member = None;
        }
        let slots: Vec<String> = (0..self.partitions).map(|k| self.slot(k)).collect();
        let others = match self.store.leases_held(&slots).await? {
            Some(held) => {
                // Read in one query; a free slot is asked for only when this process has none.
                if self.member.is_none() {
                    for (k, _) in held.iter().enumerate().filter(|(_, held)| !**held) {
                        match self.store.try_lease(&slots[k]).await? {
                            Lease::NotNeeded => return Ok(None),
                            Lease::HeldElsewhere => {}
                            Lease::Acquired(lease) => {
                                self.member = Some((k, lease));
                                break;
                            }
                        }
                    }
                }
                let own = self.member.as_ref().map(|(k, _)| *k);
                (0..self.partitions)
                    .filter(|k| held[*k] && Some(*k) != own)
                    .collect()
            }
            None => match self.probe(&slots).await? {
                Some(others) => others,
                None => return Ok(None),
            },
        };
        let own = self.member.as_ref().map_or(usize::MAX, |(k, _)| *k);
        let rank = others.iter().filter(|k| **k < own).count();
        Ok(Some((
            others.len() + usize::from(self.member.is_some()),
            rank,
        )))
    }

    /// For a store that cannot say which leases are held: asks for each slot but this
    /// process's own (taking the first free one when it has none, releasing the others at
    /// once), and returns the slots held elsewhere. `None`: the store elects no runner.
    async fn probe(
        &mut self,
        slots: &[String],
    ) -> Result<Option<Vec<usize>>, crate::store::StoreError> {
        let mut others = Vec::new();
        for (k, slot) in slots.iter().enumerate() {
            if self.member.as_ref().is_some_and(|(own, _)| *own == k) {
                continue;
            }
            match self.store.try_lease(slot).await? {
                Lease::NotNeeded => return Ok(None),
                Lease::HeldElsewhere => others.push(k),
                Lease::Acquired(lease) => {
                    if self.member.is_none() {
                        self.member = Some((k, lease));
                    }
                    // Else a free slot, released as `lease` drops.
                }
            }
        }
        Ok(Some(others))
    }
}
