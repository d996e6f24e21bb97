//! The kernel: one actor per live aggregate, started on demand and passivated when idle.
//!
//! The modules depend on each other one way only:
//!
//! - [`Kernel`] (`handle`) and [`KernelBuilder`] (`builder`) route to
//! - `registry`: the live actors of one aggregate type, started on demand;
//! - `actor`: one aggregate's task, which drains its `mailbox` and hands groups of commands to
//! - `commit`: decide (`decide`, pure), append, answer; `load` rehydrates the state and
//!   `snapshot` writes snapshots;
//! - `context`: what every actor is given (stores, settings, task tracker, clock), and
//!   `message`: what travels through a mailbox.

mod actor;
mod builder;
mod commit;
mod context;
mod decide;
mod handle;
mod load;
mod mailbox;
mod message;
mod registry;
mod snapshot;

use std::collections::BTreeMap;

use crate::store::{Metadata, RecordedEvent, StoreError};

pub use builder::{BuildError, KernelBuilder};
pub use handle::Kernel;

/// What a successful command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The stream version after the command (unchanged when it produced no events).
    pub version: u64,
    /// The recorded events, with their positions, in order (empty when none).
    pub events: Vec<RecordedEvent>,
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E> {
    /// The aggregate rejected the command.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// The stream was not at the expected version.
    #[error("version conflict: expected {expected}, actual {actual}")]
    Conflict {
        /// The version the command expected.
        expected: u64,
        /// The stream's version.
        actual: u64,
    },
    /// The aggregate type was not registered with the kernel.
    #[error("aggregate type not registered with the kernel")]
    NotRegistered,
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// The aggregate panicked: `handle` on this command, or `apply` on one of its events, or
    /// `apply` on a stored event while the state was rehydrated (then every command of the
    /// batch gets this error). Also reported when the actor ended without answering: a panic
    /// outside `handle` and `apply` (in `Default`, serde, an event codec, the store), or its
    /// runtime shut down. The actor was dropped, not restarted: the next command to the
    /// aggregate rehydrates a fresh one.
    #[error("aggregate panicked: {0}")]
    Panicked(String),
    /// The kernel is shutting down.
    #[error("kernel is shut down")]
    Shutdown,
}

/// Per-command options for [`Kernel::dispatch_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchOptions {
    /// The stream version the client expects (optimistic concurrency).
    pub expected_version: Option<u64>,
    /// Metadata recorded with every event of the command.
    pub metadata: BTreeMap<String, String>,
    /// The command's id, recorded as `command_id` metadata.
    pub command_id: Option<String>,
}

impl DispatchOptions {
    /// Expects the stream at `version` (0: the stream must be empty).
    #[must_use]
    pub fn expected_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the command id.
    #[must_use]
    pub fn command_id(mut self, id: impl Into<String>) -> Self {
        self.command_id = Some(id.into());
        self
    }

    /// Metadata to record with each event: `metadata`, plus `command_id` when set.
    pub(crate) fn event_metadata(&self) -> Metadata {
        let mut metadata = self.metadata.clone();
        if let Some(id) = &self.command_id {
            metadata.insert("command_id".to_owned(), id.clone());
        }
        metadata
    }
}

impl<E> DispatchError<E> {
    /// Maps the rejection error, keeping every other variant.
    pub fn map_rejected<F>(self, f: impl FnOnce(E) -> F) -> DispatchError<F> {
        match self {
            DispatchError::Rejected(e) => DispatchError::Rejected(f(e)),
            DispatchError::Conflict { expected, actual } => {
                DispatchError::Conflict { expected, actual }
            }
            DispatchError::NotRegistered => DispatchError::NotRegistered,
            DispatchError::Store(e) => DispatchError::Store(e),
            DispatchError::Panicked(m) => DispatchError::Panicked(m),
            DispatchError::Shutdown => DispatchError::Shutdown,
        }
    }
}
