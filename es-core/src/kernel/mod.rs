//! The kernel: one actor per live aggregate, started on demand and passivated when idle.
//!
//! The modules depend on each other one way only:
//!
//! - [`Kernel`] (`handle`) and [`KernelBuilder`] (`builder`) route to
//! - `registry`: the live actors of one aggregate type, started on demand;
//! - `actor`: one aggregate's task, which drains its `mailbox` and hands groups of commands to
//! - `commit`: decide (`decide`, pure), append, answer; `dedup` answers repeated command ids
//!   from the aggregate's window, `load` rehydrates the state and `snapshot` writes snapshots;
//! - `context`: what every actor is given (stores, settings, task tracker, clock), and
//!   `message`: what travels through a mailbox;
//! - `metrics`: the handles each aggregate type reports through, and `extensions`: what is
//!   started on top of a kernel (process managers) and stopped with it.

mod actor;
mod builder;
mod commit;
mod context;
mod decide;
mod dedup;
mod extensions;
mod handle;
mod load;
mod mailbox;
mod message;
pub(crate) mod metrics;
mod registry;
mod snapshot;

use std::sync::Arc;

use crate::store::{EnvelopeRef, Metadata, RecordedEvent, StoreError};

pub use builder::{BuildError, KernelBuilder};
pub(crate) use extensions::{Extension, ShutdownFuture};
pub use handle::Kernel;
pub(crate) use handle::WeakKernel;

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

/// Per-command options for [`Kernel::dispatch_with`]: an expected version and the envelope
/// recorded on every event of the command.
///
/// ```
/// use es_core::DispatchOptions;
///
/// let opts = DispatchOptions::default()
///     .command_id("cmd-7")            // idempotency key; a fresh UUID v7 when absent
///     .correlation_id("order-42")     // default: the command id
///     .causation_id("evt-3")          // default: the command id
///     .tag("vip")                     // on every event of the command (repeatable)
///     .metadata("ip", "10.0.0.1")     // any JSON value
///     .metadata("attempt", 3)
///     .expected_version(4);
/// assert_eq!(opts.tags, ["vip"]);
/// assert_eq!(opts.metadata["attempt"], serde_json::json!(3));
/// ```
///
/// A command id makes the command idempotent: see [`KernelBuilder::dedup_window`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchOptions {
    /// The stream version the client expects (optimistic concurrency).
    pub expected_version: Option<u64>,
    /// The command's id (idempotency key); a fresh UUID v7 is recorded when `None`.
    pub command_id: Option<Arc<str>>,
    /// The correlation id; the command id when `None`.
    pub correlation_id: Option<Arc<str>>,
    /// The causation id; the command id when `None`.
    pub causation_id: Option<Arc<str>>,
    /// Tags recorded on every event of the command.
    pub tags: Vec<String>,
    /// Metadata recorded with every event of the command.
    pub metadata: Metadata,
}

impl DispatchOptions {
    /// Expects the stream at `version` (0: the stream must be empty).
    #[must_use]
    pub fn expected_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Adds a metadata entry; the value is any JSON value.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a metadata entry from any serializable value.
    ///
    /// ```
    /// # use es_core::DispatchOptions;
    /// #[derive(serde::Serialize)]
    /// struct Caller { user: &'static str, admin: bool }
    /// let opts = DispatchOptions::default().try_metadata("caller", &Caller { user: "ann", admin: false })?;
    /// assert_eq!(opts.metadata["caller"]["user"], "ann");
    /// # Ok::<(), es_core::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the key when the value does not serialize to JSON.
    pub fn try_metadata(
        self,
        key: impl Into<String>,
        value: &impl serde::Serialize,
    ) -> Result<Self, StoreError> {
        let key = key.into();
        match serde_json::to_value(value) {
            Ok(value) => Ok(self.metadata(key, value)),
            Err(e) => Err(StoreError::InvalidInput(format!(
                "the metadata entry {key:?} does not serialize to JSON: {e}"
            ))),
        }
    }

    /// Sets the command id: the idempotency key.
    #[must_use]
    pub fn command_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.command_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn causation_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Checks the envelope as a store would ([`NewEvent::validate`](crate::store::NewEvent::validate)), before anything runs.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        EnvelopeRef {
            command_id: &self.command_id,
            correlation_id: &self.correlation_id,
            causation_id: &self.causation_id,
            tags: &self.tags,
            metadata: &self.metadata,
        }
        .validate_after(None)
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
