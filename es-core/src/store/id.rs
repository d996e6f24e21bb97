//! Stream ids and expected versions, and the one rule for ids every store checks.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one stream of events: the events of one aggregate instance.
///
/// # Which ids are valid
///
/// One rule holds on every store, checked before anything is written (and on reads, so a
/// request for an id no store could hold is an error rather than an empty answer):
///
/// - neither part is empty;
/// - `aggregate_type` is at most [`StreamId::MAX_TYPE_LEN`] bytes (128) and `aggregate_id` at
///   most [`StreamId::MAX_ID_LEN`] bytes (256) of UTF-8, sizes every backend can index (LMDB's
///   keys are limited to 511 bytes);
/// - neither part contains a NUL character (PostgreSQL's text cannot hold one).
///
/// Anything else (spaces, `/`, any Unicode) is allowed. A store answers an invalid id with
/// [`StoreError::InvalidInput`](crate::store::StoreError::InvalidInput), whose message quotes at most the first 80 bytes of the part
/// at fault.
///
/// ```
/// use es_core::store::{StoreError, StreamId};
///
/// assert!(StreamId::new("bank_account", "acc-1").validate().is_ok());
/// assert!(matches!(StreamId::new("bank_account", "").validate(), Err(StoreError::InvalidInput(_))));
/// let long = "x".repeat(StreamId::MAX_ID_LEN + 1);
/// assert!(StreamId::new("bank_account", long).validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The aggregate type, e.g. `"bank_account"` (`Aggregate::TYPE`).
    pub aggregate_type: String,
    /// The aggregate instance id, e.g. `"acc-1"`.
    pub aggregate_id: String,
}

impl StreamId {
    /// A stream id from an aggregate type and an aggregate id.
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl StreamId {
    /// The longest valid `aggregate_type`, in bytes.
    pub const MAX_TYPE_LEN: usize = 128;
    /// The longest valid `aggregate_id`, in bytes.
    pub const MAX_ID_LEN: usize = 256;
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// The version a writer expects a stream to be at when it appends (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must be empty (version 0).
    NoStream,
    /// The stream must be exactly at this version (0 means empty, like [`ExpectedVersion::NoStream`]).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}
