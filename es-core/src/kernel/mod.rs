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
mod forget;
mod handle;
mod lifecycle;
mod load;
mod mailbox;
mod message;
pub(crate) mod metrics;
mod registry;
mod snapshot;

use crate::store::{Envelope, RecordedEvent, StoreError, StreamId, envelope_builders};

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
    /// The stream was deleted ([`Kernel::delete_stream`], `es delete-stream`): it refuses
    /// every command, also after a restart and on every node sharing the store.
    #[error("stream {stream} was deleted: it accepts no more commands")]
    StreamDeleted {
        /// The deleted stream.
        stream: StreamId,
    },
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
/// assert_eq!(opts.envelope.tags, ["vip"]);
/// assert_eq!(opts.envelope.metadata["attempt"], serde_json::json!(3));
/// ```
///
/// A command id makes the command idempotent: see [`KernelBuilder::dedup_window`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchOptions {
    /// The stream version the client expects (optimistic concurrency).
    pub expected_version: Option<u64>,
    /// The envelope recorded on every event of the command (read through `Deref`): its
    /// command id (the idempotency key; a fresh UUID v7 is recorded when `None`), correlation
    /// and causation ids (the command id when `None`), tags and metadata.
    pub envelope: Envelope,
}

envelope_builders!(DispatchOptions);

impl DispatchOptions {
    /// Expects the stream at `version` (0: the stream must be empty).
    #[must_use]
    pub fn expected_version(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Checks the envelope as a store would ([`Envelope::validate`]), before anything runs.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        self.envelope.validate()
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
            DispatchError::StreamDeleted { stream } => DispatchError::StreamDeleted { stream },
        }
    }
}
