//! [`ProjectionError`]: the errors of projections and of every runner that follows the log.

use std::sync::Arc;

use crate::event::EventError;
use crate::follow::Ended;
use crate::store::StoreError;

/// Errors of projections and their runners.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// An accepted event could not be decoded.
    #[error("cannot decode event: {0}")]
    Decode(#[from] EventError),
    /// A handler returned an error.
    #[error("handler failed: {0}")]
    Handler(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// A handler panicked; the message is the panic's. The runner's error policy decides what
    /// happens next, as for an error (the state may hold part of that event's changes).
    #[error("handler panicked: {0}")]
    Panicked(String),
    /// The projection's state could not be saved or restored.
    #[error("projection state: {0}")]
    State(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Handling the event at `position` failed.
    #[error("projection `{name}` failed at position {position}: {source}")]
    At {
        /// The projection.
        name: String,
        /// The position of the failing event.
        position: u64,
        /// What failed.
        #[source]
        source: Box<ProjectionError>,
    },
    /// The projection runner has stopped.
    #[error("projection `{name}` stopped at position {position}: {reason}")]
    Stopped {
        /// The projection.
        name: String,
        /// The last position it processed.
        position: u64,
        /// Why it stopped.
        reason: String,
    },
    /// A runner of that name is already running.
    #[error("projection `{0}` is already running")]
    AlreadyRunning(String),
    /// No runner of that name exists.
    #[error("no projection named `{0}` is running")]
    NotFound(String),
    /// A dead-letter request could not be carried out: nothing parked under that key or at
    /// that position, a runner that is not running here, or a policy that does not park.
    #[error("dead letters of `{name}`: {reason}")]
    DeadLetters {
        /// The projection (or process manager).
        name: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The projection cannot run with the partitions asked for: its state is one value, or
    /// its checkpoints were written with another number of partitions (change it with a
    /// rebuild).
    #[error("partitions of `{name}`: {reason}")]
    Partitions {
        /// The projection (or process manager).
        name: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// The runner has no checkpoint store to resume from and save to.
    #[error(
        "projection `{0}` has no checkpoint store: build the kernel with `.store(..)` or \
         `.checkpoint_store(..)`, or give one with \
         `ProjectionOptions::default().checkpoint_store(..)`; to keep its position in memory \
         only (the whole log is read again after each restart), use \
         `ProjectionOptions::default().in_memory_checkpoints()`"
    )]
    NoCheckpointStore(String),
}

impl ProjectionError {
    /// The runner `name` stopped before it reached a position someone waited for.
    pub(crate) fn stopped(name: &str, ended: Ended) -> Self {
        ProjectionError::Stopped {
            name: name.to_owned(),
            position: ended.position,
            reason: ended.reason,
        }
    }
}
