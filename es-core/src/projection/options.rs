//! How to run a projection, and what its runner reports.

use std::sync::Arc;
use std::time::Duration;

use crate::follow::ProjectionPhase;
use crate::store::{CheckpointStore, RecordedEvent};

use super::partition::PartitionKeyFn;

/// What a runner does when handling an event fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Stop the runner; its status reports the error and the last position it processed.
    #[default]
    Stop,
    /// Retry the failing event with exponential backoff, up to `attempts` times, then stop.
    Retry {
        /// Retries before giving up.
        attempts: u32,
        /// The first wait; each retry doubles it.
        initial_backoff: Duration,
        /// The longest wait.
        max_backoff: Duration,
    },
    /// Skip the failing event, record it in the status, and go on.
    Skip,
    /// Retry the failing event like [`ErrorPolicy::Retry`] (`attempts: 0`: not at all), then
    /// park it in the projection's dead-letter queue with its error: every later event of the
    /// same key (the event's stream) is parked behind it, in order, while other keys go on.
    /// The parked records are saved in the same write as the checkpoint; list them with
    /// [`Projections::dead_letters`](super::Projections::dead_letters), re-run a key's with
    /// [`Projections::retry`](super::Projections::retry) and drop one with
    /// [`Projections::skip`](super::Projections::skip). A process manager parks the failing
    /// instance (the key is its instance key) the same way, and sends nothing for it and fires
    /// none of its deadlines until it is retried
    /// ([`ProcessManagers::retry`](crate::process::ProcessManagers::retry)); a deadline whose
    /// handler fails is skipped, as under [`ErrorPolicy::Skip`].
    Park {
        /// Retries before parking.
        attempts: u32,
        /// The first wait; each retry doubles it.
        initial_backoff: Duration,
        /// The longest wait.
        max_backoff: Duration,
    },
}

/// Another name of [`ErrorPolicy`], as the dead-letter queue's design names it:
/// `OnError::Park { .. }` and `OnError::park()` are `ErrorPolicy::Park { .. }` and
/// `ErrorPolicy::park()`.
///
/// ```
/// use es_core::projection::{ErrorPolicy, OnError, ProjectionOptions};
///
/// assert_eq!(OnError::park(), ErrorPolicy::park());
/// let options = ProjectionOptions::default().error_policy(OnError::Skip);
/// # let _ = options;
/// ```
pub type OnError = ErrorPolicy;

impl ErrorPolicy {
    /// [`ErrorPolicy::Park`] without retries: a failing event is parked at once.
    pub fn park() -> Self {
        ErrorPolicy::Park {
            attempts: 0,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    /// What a runner does after a handler failed with `error` on one event for the `attempt`th
    /// time (counting from 1). Projection and process-manager runners both ask it.
    pub(crate) fn on_failure(&self, attempt: u32, error: &impl std::fmt::Display) -> OnFailure {
        match self {
            ErrorPolicy::Stop => OnFailure::Stop(error.to_string()),
            ErrorPolicy::Skip => OnFailure::Skip,
            ErrorPolicy::Retry {
                attempts,
                initial_backoff,
                max_backoff,
            }
            | ErrorPolicy::Park {
                attempts,
                initial_backoff,
                max_backoff,
            } => {
                if attempt > *attempts {
                    let retried = format!("{error} (after {attempts} retries)");
                    return match self {
                        ErrorPolicy::Park { .. } if *attempts == 0 => {
                            OnFailure::Park(error.to_string())
                        }
                        ErrorPolicy::Park { .. } => OnFailure::Park(retried),
                        _ => OnFailure::Stop(retried),
                    };
                }
                let wait = initial_backoff
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
                    .min(*max_backoff);
                OnFailure::RetryAfter(wait)
            }
        }
    }
}

/// What [`ErrorPolicy::on_failure`] says to do.
pub(crate) enum OnFailure {
    /// Stop the runner; the message says why.
    Stop(String),
    /// Skip the event and go on.
    Skip,
    /// Try the event again after this wait.
    RetryAfter(Duration),
    /// Park the event (and later ones of its key) with this error.
    Park(String),
}

/// How to run a projection.
#[derive(Clone)]
pub struct ProjectionOptions {
    /// Read from this position instead of resuming from the checkpoint (the state starts from
    /// `Default`).
    pub start_position: Option<u64>,
    /// Events read per batch; the checkpoint is saved after each batch.
    pub batch_size: usize,
    /// What to do when a handler fails.
    pub error_policy: ErrorPolicy,
    /// Where checkpoints go (default: the kernel's checkpoint store).
    pub checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// Save the state with each checkpoint when the projection supports it (default `true`).
    pub persist_state: bool,
    /// How often to look for new events when no notification arrives (fallback only).
    pub poll_interval: Duration,
    /// Run without a checkpoint store, the position kept in memory only (default `false`: a
    /// runner with no checkpoint store is refused). See
    /// [`ProjectionOptions::in_memory_checkpoints`].
    pub in_memory_checkpoints: bool,
    /// How many partitions to run (default 1); see [`ProjectionOptions::partitions`].
    pub partitions: u32,
    /// The partition key, instead of the projection's own; see
    /// [`ProjectionOptions::partition_by`].
    pub partition_by: Option<PartitionKeyFn>,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        Self {
            start_position: None,
            batch_size: 1000,
            error_policy: ErrorPolicy::Stop,
            checkpoint_store: None,
            persist_state: true,
            poll_interval: Duration::from_secs(1),
            in_memory_checkpoints: false,
            partitions: 1,
            partition_by: None,
        }
    }
}

impl ProjectionOptions {
    /// Reads from `position` instead of the checkpoint.
    #[must_use]
    pub fn start_position(mut self, position: u64) -> Self {
        self.start_position = Some(position);
        self
    }

    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Sets the error policy.
    #[must_use]
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }

    /// Uses this checkpoint store instead of the kernel's.
    #[must_use]
    pub fn checkpoint_store(mut self, store: impl CheckpointStore) -> Self {
        self.checkpoint_store = Some(Arc::new(store));
        self
    }

    /// Whether to save the state with the checkpoint.
    #[must_use]
    pub fn persist_state(mut self, persist: bool) -> Self {
        self.persist_state = persist;
        self
    }

    /// Runs without a checkpoint store when neither the kernel nor these options give one: the
    /// position (and state) is kept in memory only, so after a restart the projection reads
    /// the whole log again from position 1. Without this, such a runner is refused with
    /// [`ProjectionError::NoCheckpointStore`](super::ProjectionError::NoCheckpointStore).
    /// A checkpoint store, when there is one, is still used.
    ///
    /// ```
    /// use es_core::projection::ProjectionOptions;
    ///
    /// let options = ProjectionOptions::default().in_memory_checkpoints();
    /// assert!(options.in_memory_checkpoints);
    /// ```
    #[must_use]
    pub fn in_memory_checkpoints(mut self) -> Self {
        self.in_memory_checkpoints = true;
        self
    }

    /// Runs the projection in `partitions` partitions (at least 1, at most
    /// [`MAX_PARTITIONS`](super::MAX_PARTITIONS)), each a runner of its own with its own task,
    /// checkpoint (`name#i/n`) and state: an event goes to partition
    /// [`partition_of`](super::partition_of)`(key, n)`, its key being its stream unless the
    /// projection ([`Projection::PARTITIONING`](super::Projection::PARTITIONING)) or
    /// [`ProjectionOptions::partition_by`] says otherwise. The events of one key are handled in
    /// log order; different partitions run concurrently, and on PostgreSQL they are spread over
    /// the processes running the projection.
    ///
    /// A process manager started with these options runs its instances in `partitions`
    /// partitions the same way, routed by instance key (the correlation id, or its
    /// `#[process_manager(key = f)]`), each partition with its own checkpoint
    /// (`process:NAME#i/n`); its number of partitions cannot change while it has checkpoints.
    ///
    /// A projection whose state is one value ([`Partitioning::Single`](super::Partitioning),
    /// the default) is refused with more than one partition. Starting with another number
    /// than the checkpoints were written with is refused too: change it with a rebuild.
    ///
    /// ```
    /// use es_core::projection::ProjectionOptions;
    ///
    /// let options = ProjectionOptions::default().partitions(4);
    /// assert_eq!(options.partitions, 4);
    /// ```
    #[must_use]
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Routes events to partitions by `key` instead of the projection's own key (the stream
    /// by default). The projection must still declare that its state is kept per key
    /// ([`Projection::PARTITIONING`](super::Projection::PARTITIONING)).
    ///
    /// ```
    /// use es_core::projection::ProjectionOptions;
    /// use es_core::store::RecordedEvent;
    ///
    /// fn by_tenant(event: &RecordedEvent) -> String {
    ///     event.stream.aggregate_id.split(':').next().unwrap_or_default().to_owned()
    /// }
    /// let options = ProjectionOptions::default().partitions(8).partition_by(by_tenant);
    /// assert!(options.partition_by.is_some());
    /// ```
    #[must_use]
    pub fn partition_by(mut self, key: fn(&RecordedEvent) -> String) -> Self {
        self.partition_by = Some(key);
        self
    }

    /// Sets the fallback poll interval.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}

impl std::fmt::Debug for ProjectionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionOptions")
            .field("start_position", &self.start_position)
            .field("batch_size", &self.batch_size)
            .field("error_policy", &self.error_policy)
            .field("checkpoint_store", &self.checkpoint_store.is_some())
            .field("persist_state", &self.persist_state)
            .field("poll_interval", &self.poll_interval)
            .field("in_memory_checkpoints", &self.in_memory_checkpoints)
            .field("partitions", &self.partitions)
            .field("partition_by", &self.partition_by.is_some())
            .finish()
    }
}

/// An event the [`ErrorPolicy::Skip`] policy skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    /// Its position.
    pub position: u64,
    /// Its type.
    pub event_type: String,
    /// Why it failed.
    pub error: String,
}

/// A runner's status, from [`Projections::lookup`](super::Projections::lookup).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Running, caught up, or stopped.
    pub phase: ProjectionPhase,
    /// The last position processed.
    pub position: u64,
    /// How many events were skipped under [`ErrorPolicy::Skip`].
    pub skipped_count: u64,
    /// The most recent skipped events (up to 100).
    pub skipped: Vec<SkippedEvent>,
    /// How many events of the log lie after `position` (the store's head minus `position`).
    pub lag_events: u64,
    /// How long ago the oldest event after `position` was recorded; zero when the runner is
    /// caught up (an idle log is no lag). See [`ProjectionStatus::lag_seconds`].
    pub lag: Duration,
    /// How many events the runner handled (on this kernel, across restarts).
    pub events_handled: u64,
    /// How many events its filter skipped without decoding them.
    pub events_filtered: u64,
    /// How many times a runner of this name was started again after it had stopped.
    pub restarts: u64,
    /// How many events are parked in its dead-letter queue ([`ErrorPolicy::Park`]).
    pub dead_letters: u64,
    /// The status of each partition (named `name#i/n`), for a projection run in more than
    /// one ([`ProjectionOptions::partitions`]); empty otherwise. The projection's own fields
    /// then sum the partitions' counts, and take the lowest position, the largest lag, and
    /// the phase of the least advanced partition (a stopped one first).
    pub partitions: Vec<ProjectionStatus>,
    /// A rebuild in progress ([`Projections::rebuild`](super::Projections::rebuild)), if one is.
    pub rebuild: Option<RebuildProgress>,
    /// Whether the runner stands by: another process sharing its checkpoint store
    /// (PostgreSQL) runs this projection, and this runner takes over, from the last saved
    /// checkpoint, when that one's lease ends. A standby processes nothing, so its `phase` is
    /// never [`ProjectionPhase::CaughtUp`] and its `position` is the one it last loaded or
    /// processed. Also `true` for the moment between `start` and the runner's first check
    /// that it may run; always `false` without a checkpoint store.
    pub standby: bool,
}

/// How far a rebuild has come: it has read the log up to `position`, of `head` when it
/// looked last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The last position the fresh state has processed.
    pub position: u64,
    /// The head of the log when the rebuild last read it.
    pub head: u64,
}

impl ProjectionStatus {
    /// [`ProjectionStatus::lag`] in seconds.
    pub fn lag_seconds(&self) -> f64 {
        self.lag.as_secs_f64()
    }
}

/// How many skipped events a status keeps.
pub(super) const SKIPPED_KEPT: usize = 100;
