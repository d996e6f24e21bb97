//! Store contracts: the records every backend keeps and the async traits it implements.
//!
//! A backend implements [`EventStore`] (the append-only log), [`SnapshotStore`] (aggregate
//! snapshots) and [`CheckpointStore`] (projection positions and states). Every backend proves it
//! honours these contracts by running the conformance suite of `es_core::testkit`.
//!
//! Ranges are inclusive at their start: [`EventStore::read_stream`] returns events whose sequence
//! is `>= from_sequence`, and [`EventStore::read_all`] returns events whose position is
//! `>= from_position`. Sequences and positions start at 1, so reading from 0 or 1 reads
//! everything.

mod check;
mod envelope;
mod error;
mod filter;
mod fold;
mod id;
mod keys;
mod lease;
pub mod lifecycle;
mod record;
mod traits;
mod truncation;

pub use check::quote_prefix;
pub use envelope::{Envelope, Metadata};
pub(crate) use envelope::{envelope_builders, envelope_deref};
pub use error::{EventError, StoreError};
pub use filter::{EventFilter, FilteredPage};
pub use fold::{FOLD_PAGE, fold_all, fold_stream};
pub use id::{ExpectedVersion, StreamId};
pub use keys::{ErasureRecord, KeyStore, MemoryKeyStore, StoredKey, SubjectKey, validate_subject};
pub use lease::{Lease, RunnerLease};
pub use record::{
    AppendResult, BatchAppend, BatchOutcome, Checkpoint, NewEvent, RecordedEvent, Snapshot,
    validate_append, validate_batch,
};
pub(crate) use traits::StoreFuture;
pub use traits::{CheckpointStore, EventStore, SnapshotStore, Store};
