//! [`ProjectionHandle`]: a running projection's state, position and status.

use std::sync::Arc;

use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::group::Group;
use super::options::ProjectionStatus;
use super::partition::{partition_key, partition_of};
use super::read_model::Projection;

/// A handle on a running projection (all its partitions, when it runs in several).
pub struct ProjectionHandle<P> {
    pub(super) group: Arc<Group<P>>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        Self {
            group: self.group.clone(),
        }
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// A copy of the current state. On a standby it is the state this runner last loaded or
    /// processed (it may include a batch it processed but could not save after losing its
    /// lease; taking over reloads the checkpoint).
    ///
    /// A partitioned projection has one state per partition: this is partition 0's; see
    /// [`ProjectionHandle::partition_states`] and [`ProjectionHandle::state_for`].
    pub async fn state(&self) -> P
    where
        P: Clone,
    {
        self.with_state(P::clone).await
    }

    /// Runs `f` on the current state without copying it (partition 0's, for a partitioned
    /// projection).
    pub async fn with_state<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        match self.group.parts.first() {
            Some(part) => f(&*part.state.lock().await),
            None => f(&P::default()),
        }
    }

    /// How many partitions the projection runs in (1: it is not partitioned).
    pub fn partitions(&self) -> u32 {
        self.group.parts.len() as u32
    }

    /// A copy of the state of each partition, in partition order (one state when it is not
    /// partitioned). A partition holds the state of the keys routed to it; on PostgreSQL, a
    /// partition another process runs holds what this one last loaded or processed.
    pub async fn partition_states(&self) -> Vec<P>
    where
        P: Clone,
    {
        let mut states = Vec::with_capacity(self.group.parts.len());
        for part in &self.group.parts {
            states.push(part.state.lock().await.clone());
        }
        states
    }

    /// A copy of the state of the partition that `key` (a partition key: the stream `type/id`
    /// unless the projection routes by another) belongs to.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::projection::{Partitioning, ProjectionError, spawn};
    /// use std::collections::BTreeMap;
    ///
    /// #[derive(Debug, Default, Clone)]
    /// struct PerStream(BTreeMap<String, u64>);
    /// impl Projection for PerStream {
    ///     const NAME: &'static str = "per_stream";
    ///     const PARTITIONING: Partitioning = Partitioning::ByStream;
    ///     fn accepts(_: &str) -> bool {
    ///         true
    ///     }
    ///     fn handle(&mut self, e: &RecordedEvent) -> Result<(), ProjectionError> {
    ///         *self.0.entry(e.stream.to_string()).or_default() += 1;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let options = ProjectionOptions::default().checkpoint_store(store.clone()).partitions(4);
    /// let handle = spawn::<PerStream>(store.clone(), options).await?;
    /// let mut last = 0;
    /// for id in ["a", "b", "c"] {
    ///     let stream = StreamId::new("clock", id);
    ///     let done = store
    ///         .append(&stream, ExpectedVersion::Any, vec![NewEvent::new("Ticked", b"{}".to_vec())])
    ///         .await?;
    ///     last = done.events[0].position;
    /// }
    /// handle.wait_for(last).await?;
    /// assert_eq!(handle.partitions(), 4);
    /// assert_eq!(handle.state_for("clock/b").await.0.get("clock/b"), Some(&1));
    /// let total: u64 = handle.partition_states().await.iter().flat_map(|s| s.0.values()).sum();
    /// assert_eq!(total, 3);
    /// handle.stop().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn state_for(&self, key: &str) -> P
    where
        P: Clone,
    {
        let index = partition_of(key, self.partitions()) as usize;
        match self.group.parts.get(index) {
            Some(part) => part.state.lock().await.clone(),
            None => P::default(),
        }
    }

    /// The partition key of `event` for this projection (its stream, unless it routes by
    /// another key).
    pub fn key_of(&self, event: &crate::store::RecordedEvent) -> String {
        partition_key(event, P::PARTITIONING.key_fn())
    }

    /// The last position processed (by every partition, for a partitioned projection).
    pub fn position(&self) -> u64 {
        self.group.position()
    }

    /// Waits until the runner has processed `position` (read-your-writes after a dispatch);
    /// a partitioned projection, until every partition has. Fails if a runner stops first.
    ///
    /// A standby ([`ProjectionStatus::standby`]: another process sharing the checkpoint store
    /// runs this projection) is not caught up: it returns at once only for positions up to the
    /// checkpoint it last loaded, and otherwise waits until this runner has taken over and
    /// processed `position` itself. It does not follow the other process's progress; wrap it
    /// in a timeout where the other process's work is enough.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionError> {
        for part in &self.group.parts {
            part.progress
                .wait_for(position)
                .await
                .map_err(|ended| ProjectionError::stopped(&part.checkpoint, ended))?;
        }
        Ok(())
    }

    /// Its dead letters, parked and skipped, in the order they were parked (by position,
    /// across partitions; see [`Projections::dead_letters`](super::Projections::dead_letters)).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.group.dead_letters()
    }

    /// Re-runs the parked events of `key` in order; see
    /// [`Projections::retry`](super::Projections::retry).
    pub async fn retry(&self, key: &str) -> Result<usize, ProjectionError> {
        self.group.retry(key).await
    }

    /// Drops the parked event of `key` at `position`, keeping `reason`; see
    /// [`Projections::skip`](super::Projections::skip).
    pub async fn skip(
        &self,
        key: &str,
        position: u64,
        reason: &str,
    ) -> Result<(), ProjectionError> {
        self.group.skip(key, position, reason).await
    }

    /// The runner's status (with each partition's, for a partitioned projection).
    pub fn status(&self) -> ProjectionStatus {
        self.group.status()
    }

    /// Stops the runner (every partition) after the event it is handling (what it handled is
    /// checkpointed) and waits for it; its status then says
    /// [`ProjectionPhase::Stopped`](crate::projection::ProjectionPhase::Stopped). Stopping a
    /// stopped runner does nothing.
    pub async fn stop(&self) -> Result<(), ProjectionError> {
        self.group.stop().await;
        Ok(())
    }
}
