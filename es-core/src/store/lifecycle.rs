//! Streams that end: soft deletes (a tombstone event), hard deletes and truncation, written
//! once on top of [`EventStore::truncate_stream`] for every backend.
//!
//! - **Soft delete** appends one [`TOMBSTONE`] event to the stream, checked against the
//!   stream's version like any append: it is atomic, survives restarts, is seen by every node
//!   sharing the store and reaches followers through `read_all`. The kernel refuses commands to
//!   a stream whose log holds a tombstone (`DispatchError::StreamDeleted`). The events stay
//!   readable.
//! - **Hard delete** is a soft delete followed by removing every event before the tombstone
//!   ([`EventStore::truncate_stream`]) and every snapshot of the stream. The tombstone stays:
//!   it keeps the stream's version, so the stream keeps refusing commands (a new stream under
//!   the same id is never started by mistake, as with EventStoreDB's hard delete). An
//!   interrupted hard delete leaves the stream soft-deleted; running it again completes it.
//! - **Truncation** removes the events before a sequence when a snapshot covers them.
//!
//! Generated projections never see the tombstone (its type, starting with `$`, matches no
//! event of an event set); a hand-written projection accepting every type can recognise it
//! with [`is_tombstone`].

use super::error::StoreError;
use super::id::{ExpectedVersion, StreamId};
use super::record::{NewEvent, RecordedEvent};
use super::traits::{EventStore, SnapshotStore};
pub use super::truncation::Truncation;

/// The event type of the tombstone a soft delete appends. Event types starting with `$` are
/// reserved for the framework.
pub const TOMBSTONE: &str = "$stream-deleted";

/// Whether `event` is a deletion tombstone.
pub fn is_tombstone(event: &RecordedEvent) -> bool {
    event.event_type == TOMBSTONE
}

/// What [`delete_stream`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The stream.
    pub stream: StreamId,
    /// The tombstone's sequence: the stream's version from now on.
    pub version: u64,
    /// The tombstone's position in the global log.
    pub position: u64,
    /// Whether this call appended the tombstone (`false`: the stream was already deleted).
    pub tombstoned: bool,
    /// How many events a hard delete removed (0 for a soft delete).
    pub removed: u64,
}

/// Deletes `stream`: appends a [`TOMBSTONE`] unless its last event already is one, and when
/// `hard`, removes every event before the tombstone and (given a snapshot store) every
/// snapshot of the stream. Idempotent: deleting a deleted stream again changes nothing (or,
/// with `hard`, completes the removal). A stream without events answers
/// [`StoreError::InvalidInput`].
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{EventStore, lifecycle};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), es_core::store::StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let tick = || NewEvent::new("Ticked", b"{}".to_vec());
/// store.append(&stream, ExpectedVersion::NoStream, vec![tick(), tick()]).await?;
/// let done = lifecycle::delete_stream(&store, Some(&store), &stream, true).await?;
/// assert_eq!((done.version, done.removed), (3, 2));
/// let left = store.read_stream(&stream, 1, 10).await?;
/// assert!(left.len() == 1 && lifecycle::is_tombstone(&left[0]));
/// assert_eq!(store.stream_version(&stream).await?, 3);
/// # Ok(())
/// # }
/// ```
pub async fn delete_stream<E, S>(
    events: &E,
    snapshots: Option<&S>,
    stream: &StreamId,
    hard: bool,
) -> Result<Deletion, StoreError>
where
    E: EventStore + ?Sized,
    S: SnapshotStore + ?Sized,
{
    let mut attempts = 0;
    let (version, position, tombstoned) = loop {
        let version = events.stream_version(stream).await?;
        if version == 0 {
            return Err(StoreError::InvalidInput(format!(
                "stream {stream} has no events: there is nothing to delete"
            )));
        }
        if let Some(tombstone) = tombstone_at(events, stream, version).await? {
            break (version, tombstone.position, false);
        }
        let tombstone = NewEvent::new(TOMBSTONE, br#"{}"#.to_vec());
        match events
            .append(stream, ExpectedVersion::Exact(version), vec![tombstone])
            .await
        {
            Ok(done) => {
                let position = done.events.first().map_or(0, |e| e.position);
                break (done.version, position, true);
            }
            Err(StoreError::Conflict { .. }) if attempts < 8 => attempts += 1,
            Err(e) => return Err(e),
        }
    };
    let mut removed = 0;
    if hard {
        removed = events.truncate_stream(stream, version).await?;
        if let Some(snapshots) = snapshots {
            snapshots.prune(stream, 0).await?;
        }
    }
    Ok(Deletion {
        stream: stream.clone(),
        version,
        position,
        tombstoned,
        removed,
    })
}

/// The event at `version` (the stream's last) when it is a tombstone.
async fn tombstone_at<E: EventStore + ?Sized>(
    events: &E,
    stream: &StreamId,
    version: u64,
) -> Result<Option<RecordedEvent>, StoreError> {
    let last = events.read_stream(stream, version, 1).await?;
    Ok(last.into_iter().next().filter(is_tombstone))
}

/// Whether `stream` has been deleted (its last event is a tombstone).
pub async fn is_deleted<E: EventStore + ?Sized>(
    events: &E,
    stream: &StreamId,
) -> Result<bool, StoreError> {
    let version = events.stream_version(stream).await?;
    if version == 0 {
        return Ok(false);
    }
    Ok(tombstone_at(events, stream, version).await?.is_some())
}

/// Removes the events of `stream` before sequence `before`, refusing unless a snapshot at
/// version `before - 1` or later exists (so that the stream stays rehydratable) and `before`
/// is at most the stream's version (its last event is always kept). Returns how many events
/// were removed.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{EventStore, Snapshot, SnapshotStore, lifecycle};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), es_core::store::StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let tick = || NewEvent::new("Ticked", b"{}".to_vec());
/// store.append(&stream, ExpectedVersion::NoStream, vec![tick(), tick(), tick()]).await?;
/// // No snapshot covers events 1 and 2 yet: refused.
/// assert!(lifecycle::truncate_before(&store, &store, &stream, 3).await.is_err());
/// SnapshotStore::save(&store, Snapshot::new(stream.clone(), 2, b"{}".to_vec())).await?;
/// assert_eq!(lifecycle::truncate_before(&store, &store, &stream, 3).await?, 2);
/// assert_eq!(store.read_stream(&stream, 1, 10).await?[0].sequence, 3);
/// assert_eq!(store.stream_version(&stream).await?, 3);
/// # Ok(())
/// # }
/// ```
pub async fn truncate_before<E, S>(
    events: &E,
    snapshots: &S,
    stream: &StreamId,
    before: u64,
) -> Result<u64, StoreError>
where
    E: EventStore + ?Sized,
    S: SnapshotStore + ?Sized,
{
    let version = events.stream_version(stream).await?;
    if before > version {
        return Err(StoreError::InvalidInput(format!(
            "cannot truncate {stream} before sequence {before}: its version is {version}, and \
             its last event is always kept"
        )));
    }
    let covered = snapshots.load_latest(stream).await?.map(|s| s.version);
    if before > 1 && covered.is_none_or(|v| v + 1 < before) {
        let have = covered.map_or_else(|| "none".to_owned(), |v| format!("version {v}"));
        return Err(StoreError::InvalidInput(format!(
            "cannot truncate {stream} before sequence {before}: no snapshot at version {} or \
             later (latest: {have}), so the stream could not be rehydrated",
            before - 1
        )));
    }
    events.truncate_stream(stream, before).await
}
