//! The errors of the store layer: [`StoreError`], and [`EventError`] for a stored event this
//! code cannot decode.

use std::sync::Arc;

use super::id::{ExpectedVersion, StreamId};

/// Errors of the store layer.
///
/// `StoreError` is `Clone` so that one failed group commit can be reported to every request of
/// the group.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version. Nothing was written.
    #[error("wrong expected version: expected {expected}, stream is at version {actual}")]
    Conflict {
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The store cannot be reached right now (lost connection, pool exhausted, timeout). The
    /// operation did not take effect; it is safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The outcome of a write is unknown (e.g. the connection dropped during commit). The caller
    /// must not assume it committed, nor that it did not.
    #[error("outcome of the write is unknown: {0}")]
    Indeterminate(String),
    /// An I/O error.
    #[error("I/O error: {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Stored data cannot be read back (corrupt file, bad record).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// A stored event is intact but this code cannot decode it: an unknown event name, a
    /// version newer than the code, an upcaster's error or a payload that no longer
    /// deserializes. Deploying code that reads it fixes it; nothing needs repairing.
    #[error("event {sequence} of stream {stream} cannot be decoded: {source}")]
    Decode {
        /// The event's stream.
        stream: StreamId,
        /// The event's sequence in its stream.
        sequence: u64,
        /// What the decoder reported (naming the event, its stored version and the reason).
        #[source]
        source: EventError,
    },
    /// The store is full (disk full, LMDB map at its configured maximum).
    #[error("store full: {0}")]
    Full(String),
    /// The location holds something that is not a store this version can open.
    #[error("incompatible store: {0}")]
    Incompatible(String),
    /// Another process or handle holds the store.
    #[error("store locked: {0}")]
    Locked(String),
    /// The request itself is invalid (e.g. an empty stream id).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The store has been closed.
    #[error("store closed")]
    Closed,
    /// Any other backend error.
    #[error("{backend} error: {message}")]
    Backend {
        /// The backend's name (`"lmdb"`, `"postgres"`, ...).
        backend: &'static str,
        /// The backend's message.
        message: String,
    },
}

impl StoreError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// Whether the operation is known not to have taken effect and may simply be retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Encoding or decoding an event failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The stored event name is not part of this event set.
    #[error("unknown event type `{event_type}`")]
    UnknownEvent {
        /// The stored name.
        event_type: String,
    },
    /// The stored event was written with a newer schema version than this code knows.
    #[error("event `{event_type}` has version {version}, this code supports up to {supported}")]
    UnsupportedVersion {
        /// The event name.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The highest version this code reads.
        supported: u32,
    },
    /// An upcaster refused a stored payload.
    #[error(
        "cannot upcast event `{event_type}` stored at version {version}: the upcaster from \
         version {from} failed: {message}"
    )]
    Upcast {
        /// The event name.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The version the failing upcaster lifts from.
        from: u32,
        /// The upcaster's message, verbatim.
        message: String,
    },
    /// The stored payload does not deserialize into the event type (after the upcaster chain,
    /// for an older version).
    #[error("cannot decode payload of event `{event_type}` stored at version {version}: {message}")]
    Payload {
        /// The event name.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The deserializer's message.
        message: String,
    },
    /// The event could not be serialized.
    #[error("cannot encode event `{event_type}`: {message}")]
    Encode {
        /// The event name.
        event_type: String,
        /// The serializer's message.
        message: String,
    },
}
