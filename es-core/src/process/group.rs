//! [`Group`]: the runners of one process manager, one per partition (a single one when it is
//! not partitioned), seen as one by its handle and its registry.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::follow::ProjectionPhase;
use crate::projection::SpreadHandle;

use super::requests::{Ask, Request};
use super::status::{ProcessStatus, Shared};
use crate::projection::{DeadLetter, ProjectionError, partition_of};
use tokio::sync::oneshot;

/// The partition runners of one process manager.
pub(crate) struct Group {
    pub(crate) name: &'static str,
    /// One runner per partition, in partition order.
    pub(crate) parts: Vec<Arc<Shared>>,
    /// What spreads the partitions over processes (PostgreSQL), while it runs.
    pub(crate) spread: Option<SpreadHandle>,
}

impl Group {
    /// Whether every partition has stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.parts.iter().all(|p| p.progress.is_stopped())
    }

    /// The lowest position every partition has processed.
    pub(crate) fn position(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.progress.position())
            .min()
            .unwrap_or(0)
    }

    /// Live instances, in every partition.
    pub(crate) fn instances(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.instances.load(Ordering::Relaxed))
            .sum()
    }

    /// Pending deadlines, in every partition.
    pub(crate) fn deadlines(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.deadlines.load(Ordering::Relaxed))
            .sum()
    }

    /// The dead letters of every partition, by position.
    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut letters: Vec<DeadLetter> = self
            .parts
            .iter()
            .flat_map(|p| p.dead_letters.lock().clone())
            .collect();
        if self.parts.len() > 1 {
            letters.sort_by_key(|l| l.position);
        }
        letters
    }

    /// Asks the runner of the partition that instance `key` belongs to for `ask`.
    pub(crate) async fn ask(&self, key: &str, ask: Ask) -> Result<usize, ProjectionError> {
        let index = partition_of(key, self.parts.len() as u32) as usize;
        match self.parts.get(index) {
            Some(part) => ask_runner(part, ask).await,
            None => Err(ProjectionError::NotFound(self.name.to_owned())),
        }
    }

    /// Stops every partition (and the spreading) and waits for them.
    pub(crate) async fn stop(&self) {
        if let Some(spread) = &self.spread {
            spread.stop();
        }
        for part in &self.parts {
            part.progress.stop().await;
        }
    }

    /// The status: its one runner's, or the partitions' together (counts summed, the lowest
    /// position, the phase of the least advanced partition, a stopped one first).
    pub(crate) fn status(&self) -> ProcessStatus {
        if let [only] = self.parts.as_slice() {
            return only.status();
        }
        let statuses: Vec<ProcessStatus> = self.parts.iter().map(|p| p.status()).collect();
        let mut status = ProcessStatus {
            name: self.name.to_owned(),
            phase: ProjectionPhase::CaughtUp,
            position: u64::MAX,
            instances: 0,
            events_handled: 0,
            commands_sent: 0,
            rejections: 0,
            deadlines_pending: 0,
            deadlines_fired: 0,
            skipped: 0,
            dead_letters: 0,
            standby: true,
            partitions: Vec::new(),
        };
        let mut rank = 0;
        for part in &statuses {
            status.position = status.position.min(part.position);
            status.instances += part.instances;
            status.events_handled += part.events_handled;
            status.commands_sent += part.commands_sent;
            status.rejections += part.rejections;
            status.deadlines_pending += part.deadlines_pending;
            status.deadlines_fired += part.deadlines_fired;
            status.skipped += part.skipped;
            status.dead_letters += part.dead_letters;
            status.standby &= part.standby;
            let this = match &part.phase {
                ProjectionPhase::CaughtUp => 1,
                ProjectionPhase::Running => 2,
                ProjectionPhase::Stopped { error: None } => 3,
                ProjectionPhase::Stopped { error: Some(_) } => 4,
            };
            if this > rank {
                rank = this;
                status.phase = match &part.phase {
                    ProjectionPhase::Stopped { error: Some(e) } => ProjectionPhase::Stopped {
                        error: Some(format!("partition `{}`: {e}", part.name)),
                    },
                    other => other.clone(),
                };
            }
        }
        if statuses.is_empty() {
            status.position = 0;
        }
        status.partitions = statuses;
        status
    }
}

/// Asks the runner behind `shared` for `ask` and waits for its answer.
async fn ask_runner(shared: &Shared, ask: Ask) -> Result<usize, ProjectionError> {
    let refused = |reason: &str| ProjectionError::DeadLetters {
        name: shared.name.clone(),
        reason: reason.to_owned(),
    };
    // A runner just started stands by until its first check that it may run.
    let waited = tokio::time::Instant::now();
    while shared.progress.standby()
        && !shared.progress.is_stopped()
        && waited.elapsed() < std::time::Duration::from_secs(1)
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    if shared.progress.is_stopped() {
        return Err(refused("its runner is stopped: start it, then try again"));
    }
    if shared.progress.standby() {
        return Err(refused(
            "its runner stands by while another process runs it: ask that process",
        ));
    }
    let (reply, answer) = oneshot::channel();
    shared
        .requests
        .send(Request { ask, reply })
        .map_err(|_| refused("its runner stopped: start it, then try again"))?;
    answer
        .await
        .map_err(|_| refused("its runner stopped before it answered: start it, then try again"))?
}
