//! [`Group`]: the runners of one projection, one per partition (a single one when it is not
//! partitioned), seen as one by its handle and by [`super::Projections`].

use std::sync::Arc;

use crate::follow::ProjectionPhase;

use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::options::ProjectionStatus;
use super::parking;
use super::shared::{Shared, status_of};

/// The partition runners of one projection.
pub(super) struct Group<P> {
    /// The projection's name.
    pub(super) name: &'static str,
    /// One runner per partition, in partition order.
    pub(super) parts: Vec<Arc<Shared<P>>>,
    /// What spreads the partitions over processes (PostgreSQL), while it runs.
    pub(super) spread: Option<super::spread::SpreadHandle>,
}

impl<P> Group<P> {
    /// Whether the projection is run in more than one partition.
    pub(super) fn partitioned(&self) -> bool {
        self.parts.len() > 1
    }

    /// The lowest position every partition has processed.
    pub(super) fn position(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.progress.position())
            .min()
            .unwrap_or(0)
    }

    /// The projection's status: its one runner's, or the partitions' together.
    pub(super) fn status(&self) -> ProjectionStatus {
        let statuses: Vec<ProjectionStatus> = self.parts.iter().map(|p| status_of(p)).collect();
        if !self.partitioned() {
            if let Some(only) = statuses.into_iter().next() {
                return only;
            }
            return empty(self.name);
        }
        let mut status = empty(self.name);
        status.position = u64::MAX;
        status.standby = true;
        let mut phase_rank = 0;
        for part in &statuses {
            status.position = status.position.min(part.position);
            status.lag_events = status.lag_events.max(part.lag_events);
            status.lag = status.lag.max(part.lag);
            status.skipped_count += part.skipped_count;
            status.skipped.extend(part.skipped.iter().cloned());
            status.events_handled += part.events_handled;
            status.events_filtered += part.events_filtered;
            status.restarts = status.restarts.max(part.restarts);
            status.dead_letters += part.dead_letters;
            status.standby &= part.standby;
            status.rebuild = status.rebuild.or(part.rebuild);
            let rank = match &part.phase {
                ProjectionPhase::CaughtUp => 1,
                ProjectionPhase::Running => 2,
                ProjectionPhase::Stopped { error: None } => 3,
                ProjectionPhase::Stopped { error: Some(_) } => 4,
            };
            if rank > phase_rank {
                phase_rank = rank;
                status.phase = match &part.phase {
                    ProjectionPhase::Stopped { error: Some(e) } => ProjectionPhase::Stopped {
                        error: Some(format!("partition `{}`: {e}", part.name)),
                    },
                    other => other.clone(),
                };
            }
        }
        status.skipped.sort_by_key(|s| s.position);
        status.partitions = statuses;
        status
    }

    /// Every partition's dead letters, by position.
    pub(super) fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut letters: Vec<DeadLetter> = self
            .parts
            .iter()
            .flat_map(|p| p.parked.lock().list())
            .collect();
        if self.partitioned() {
            letters.sort_by_key(|l| l.position);
        }
        letters
    }

    /// The partition whose dead letters hold a parked event of `key` (at `position`, when
    /// given).
    fn holding(&self, key: &str, position: Option<u64>) -> Result<&Shared<P>, ProjectionError> {
        if let [only] = self.parts.as_slice() {
            return Ok(only);
        }
        self.parts
            .iter()
            .find(|p| {
                p.parked
                    .lock()
                    .parked_of(key)
                    .iter()
                    .any(|l| position.is_none_or(|at| l.position == at))
            })
            .map(AsRef::as_ref)
            .ok_or_else(|| ProjectionError::DeadLetters {
                name: self.name.to_owned(),
                reason: match position {
                    Some(at) => format!("no event of `{key}` is parked at position {at}"),
                    None => format!("no event of `{key}` is parked"),
                },
            })
    }

    /// Re-runs the parked events of `key` in order, in the partition that holds them.
    pub(super) async fn retry(&self, key: &str) -> Result<usize, ProjectionError>
    where
        P: super::Projection,
    {
        parking::retry(self.holding(key, None)?, key).await
    }

    /// Drops the parked event of `key` at `position`, in the partition that holds it.
    pub(super) async fn skip(
        &self,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError>
    where
        P: super::Projection,
    {
        parking::skip(self.holding(key, Some(position))?, key, position, reason).await
    }

    /// Stops every partition (and the spreading) and waits for them.
    pub(super) async fn stop(&self) {
        if let Some(spread) = &self.spread {
            spread.stop();
        }
        for part in &self.parts {
            part.progress.stop().await;
        }
    }
}

/// The status of a projection with no runner.
fn empty(name: &str) -> ProjectionStatus {
    ProjectionStatus {
        name: name.to_owned(),
        phase: ProjectionPhase::CaughtUp,
        position: 0,
        skipped_count: 0,
        skipped: Vec::new(),
        lag_events: 0,
        lag: std::time::Duration::ZERO,
        events_handled: 0,
        events_filtered: 0,
        restarts: 0,
        dead_letters: 0,
        rebuild: None,
        standby: false,
        partitions: Vec::new(),
    }
}
