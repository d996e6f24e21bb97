//! The async traits a backend implements: the log, snapshots and checkpoints.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::error::StoreError;
use super::filter::{EventFilter, FilteredPage};
use super::id::{ExpectedVersion, StreamId};
use super::keys::KeyStore;
use super::lease::Lease;
use super::record::{
    AppendResult, BatchAppend, BatchOutcome, Checkpoint, NewEvent, RecordedEvent, Snapshot,
    validate_batch,
};
use super::truncation::Truncation;

/// The append-only event log.
///
/// All methods are safe to call concurrently. Implementations must make `append` atomic (all
/// events or none), check the expected version against the stream's committed version, assign
/// gapless sequences per stream and strictly increasing positions in commit order.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at the `expected` version, atomically.
    ///
    /// On a version mismatch returns [`StoreError::Conflict`] and writes nothing. Appending no
    /// events checks the expected version and returns the current version.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends a batch of appends, in batch order: each is decided as [`EventStore::append`]
    /// would decide it after the ones before it in the batch.
    ///
    /// - **Checked first.** Every append is validated before anything is written (stream ids,
    ///   envelopes: [`validate_batch`], and the store's own limits); an invalid one fails the
    ///   whole call with [`StoreError::InvalidInput`] naming its index, and nothing is written.
    /// - **Each append on its own.** Each append is atomic, as with `append`. One whose expected
    ///   version does not match gets `Err(StoreError::Conflict)` in its slot of the answer and
    ///   writes nothing; the appends after it are still decided (one expecting the version a
    ///   failed append would have left then conflicts too). Several appends may name the same
    ///   stream: each sees the ones before it.
    /// - **Order.** The events are given positions in batch order: every event of an append
    ///   comes after every event of the appends before it in the batch, and sequences follow on
    ///   from the stream's version as for `append`.
    /// - **The answer** (`Ok`) holds one outcome per append, in batch order. An `Err` of the
    ///   whole call (closed store, I/O failure, unreachable server) means the batch did not
    ///   complete: with this default implementation, which calls `append` once per append in
    ///   order, the appends before the failing one stay written and the rest were not tried;
    ///   the file, LMDB and PostgreSQL stores write the batch in one transaction (PostgreSQL:
    ///   one per run of appends it can decide in one statement), which then wrote nothing.
    ///
    /// Backends override it to write the whole batch with one commit (one flush) instead of
    /// one per append; other writers' appends may still commit between two appends of a batch
    /// with this default implementation.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::store::{BatchAppend, StoreError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = MemoryStore::new();
    /// let (a, b) = (StreamId::new("counter", "a"), StreamId::new("counter", "b"));
    /// let tick = || NewEvent::new("Ticked", b"{}".to_vec());
    /// let outcomes = store
    ///     .append_many(vec![
    ///         BatchAppend::new(a.clone(), ExpectedVersion::NoStream, vec![tick()]),
    ///         BatchAppend::new(b.clone(), ExpectedVersion::Exact(5), vec![tick()]),
    ///         BatchAppend::new(a.clone(), ExpectedVersion::Exact(1), vec![tick(), tick()]),
    ///     ])
    ///     .await?;
    /// assert_eq!(outcomes[0].as_ref().map(|r| r.version).ok(), Some(1));
    /// assert!(matches!(outcomes[1], Err(StoreError::Conflict { actual: 0, .. })));
    /// assert_eq!(outcomes[2].as_ref().map(|r| r.version).ok(), Some(3));
    /// assert_eq!(store.head_position().await?, 3);
    /// # Ok(())
    /// # }
    /// ```
    async fn append_many(&self, batch: Vec<BatchAppend>) -> Result<BatchOutcome, StoreError> {
        validate_batch(&batch)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for append in batch {
            match self
                .append(&append.stream, append.expected, append.events)
                .await
            {
                Ok(done) => outcomes.push(Ok(done)),
                Err(conflict @ StoreError::Conflict { .. }) => outcomes.push(Err(conflict)),
                Err(other) => return Err(other),
            }
        }
        Ok(outcomes)
    }

    /// Up to `limit` events of `stream` with sequence `>= from_sequence`, in sequence order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the global log with position `>= from_position`, in position
    /// order. A reader never skips an event that becomes visible later with a lower position.
    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Like [`EventStore::read_all`], but returns only the events whose type `accept` takes.
    ///
    /// Up to `limit` events are *examined*; [`FilteredPage::scanned_to`] tells how far, so a
    /// reader advances past skipped events too. Backends override this to skip the events they
    /// do not return without copying their payloads; the default filters `read_all`.
    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        let page = self.read_all(from_position, limit).await?;
        let scanned = page.len();
        let scanned_to = page.last().map_or(0, |e| e.position);
        Ok(FilteredPage {
            events: page.into_iter().filter(|e| accept(&e.event_type)).collect(),
            scanned,
            scanned_to,
        })
    }

    /// Like [`EventStore::read_all_filtered`], with a filter over the envelope: the event type,
    /// the stream's aggregate type and, last, a function of the whole event.
    ///
    /// Up to `limit` events are *examined*, as for `read_all_filtered`. Backends override this
    /// to decide on the type and aggregate type without decoding (or copying) the payloads of
    /// the events they do not return; the default filters `read_all_filtered`.
    async fn read_all_matching(
        &self,
        from_position: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let mut page = self
            .read_all_filtered(from_position, limit, filter.event_type)
            .await?;
        page.events.retain(|e| filter.matches(e));
        Ok(page)
    }

    /// The stream's version: its last sequence, 0 when it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The highest position a reader may read (0 for an empty store).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// A receiver whose value is the highest readable position; it changes after each commit.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// The store's key store, for erasure by crypto-shredding ([`crate::erasure`]). Every
    /// backend of this workspace has one; the default (for other stores) is none, and a kernel
    /// over such a store refuses events with `#[pii]` fields unless given a key store.
    fn key_store(&self) -> Option<Arc<dyn KeyStore>> {
        None
    }

    /// Removes the events of `stream` whose sequence is below `before`, atomically (all of
    /// them or none), and records the removal (see [`EventStore::truncations`]). Returns how
    /// many events were removed.
    ///
    /// - `before` must be at most the stream's version: the last event is always kept, so the
    ///   stream's version never changes and appends go on checking it. A larger `before`
    ///   answers [`StoreError::InvalidInput`] and removes nothing. `before <= 1`, or a `before`
    ///   at or below an earlier truncation's, removes nothing.
    /// - Positions of the other events do not change. `read_all` skips the removed positions
    ///   (a reader never stops at the hole), `head_position` is unchanged, and `read_stream`
    ///   from sequence 1 starts at the first kept event.
    /// - Snapshots are not touched; [`lifecycle::truncate_before`](super::lifecycle::truncate_before)
    ///   checks that one covers the removed events first.
    ///
    /// The default answers [`StoreError::InvalidInput`] (a store that cannot remove events);
    /// every backend of this workspace implements it.
    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        let _ = before;
        Err(StoreError::InvalidInput(format!(
            "this store cannot remove events (truncating {stream})"
        )))
    }

    /// The removals [`EventStore::truncate_stream`] recorded: one per stream, with the highest
    /// `before` (so `es verify` tells a truncated stream from lost events). The default: none.
    async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        Ok(Vec::new())
    }
}

/// Aggregate snapshots, so that rehydration replays only the events after the latest one.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Saves a snapshot (replacing one at the same stream and version).
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError>;
    /// The snapshot with the highest version for `stream`, if any.
    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;
    /// Deletes all but the `keep_last` most recent snapshots of `stream`.
    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError>;
}

/// Projection checkpoints: the last processed position, with the projection's state when it is
/// persisted. Saving the position and the state is one atomic write.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The saved checkpoint of projection `name`, if any.
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError>;
    /// Saves projection `name`'s position and (optional) state atomically.
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError>;

    /// Tries to become the one process that runs the runner `name` among every process sharing
    /// this store. The default, for stores one process owns, is [`Lease::NotNeeded`].
    async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
        let _ = name;
        Ok(Lease::NotNeeded)
    }

    /// Which of the runner leases `names` some process holds now (this one included), in the
    /// order given, read without taking any: what processes sharing the store count each other
    /// by. `None` when the store cannot tell; then [`try_lease`](Self::try_lease) asks one at a
    /// time. The default is `None`.
    async fn leases_held(&self, names: &[String]) -> Result<Option<Vec<bool>>, StoreError> {
        let _ = names;
        Ok(None)
    }
}

/// The future of a store call, as `async_trait` writes it.
pub(crate) type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

macro_rules! forward_event_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: EventStore + ?Sized> EventStore for $ty {
            // The hot calls hand back the inner store's future as it is: a forwarding layer
            // costs no allocation and no extra poll (written as `async_trait` expands them).
            fn append<'life0, 'life1, 'async_trait>(
                &'life0 self,
                stream: &'life1 StreamId,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> StoreFuture<'async_trait, AppendResult>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).append(stream, expected, events)
            }
            fn append_many<'life0, 'async_trait>(
                &'life0 self,
                batch: Vec<BatchAppend>,
            ) -> StoreFuture<'async_trait, BatchOutcome>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                (**self).append_many(batch)
            }
            fn read_stream<'life0, 'life1, 'async_trait>(
                &'life0 self,
                stream: &'life1 StreamId,
                from_sequence: u64,
                limit: usize,
            ) -> StoreFuture<'async_trait, Vec<RecordedEvent>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).read_stream(stream, from_sequence, limit)
            }
            fn read_all<'life0, 'async_trait>(
                &'life0 self,
                from_position: u64,
                limit: usize,
            ) -> StoreFuture<'async_trait, Vec<RecordedEvent>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                (**self).read_all(from_position, limit)
            }
            async fn read_all_filtered(
                &self,
                from_position: u64,
                limit: usize,
                accept: for<'t> fn(&'t str) -> bool,
            ) -> Result<FilteredPage, StoreError> {
                (**self)
                    .read_all_filtered(from_position, limit, accept)
                    .await
            }
            async fn read_all_matching(
                &self,
                from_position: u64,
                limit: usize,
                filter: EventFilter,
            ) -> Result<FilteredPage, StoreError> {
                (**self)
                    .read_all_matching(from_position, limit, filter)
                    .await
            }
            fn stream_version<'life0, 'life1, 'async_trait>(
                &'life0 self,
                stream: &'life1 StreamId,
            ) -> StoreFuture<'async_trait, u64>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                (**self).stream_version(stream)
            }
            fn head_position<'life0, 'async_trait>(&'life0 self) -> StoreFuture<'async_trait, u64>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                (**self).head_position()
            }
            fn subscribe(&self) -> watch::Receiver<u64> {
                (**self).subscribe()
            }
            fn key_store(&self) -> Option<Arc<dyn KeyStore>> {
                (**self).key_store()
            }
            async fn truncate_stream(
                &self,
                stream: &StreamId,
                before: u64,
            ) -> Result<u64, StoreError> {
                (**self).truncate_stream(stream, before).await
            }
            async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
                (**self).truncations().await
            }
        }

        #[async_trait]
        impl<T: SnapshotStore + ?Sized> SnapshotStore for $ty {
            async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
                (**self).save(snapshot).await
            }
            async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
                (**self).load_latest(stream).await
            }
            async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
                (**self).prune(stream, keep_last).await
            }
        }

        #[async_trait]
        impl<T: CheckpointStore + ?Sized> CheckpointStore for $ty {
            async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
                (**self).load(name).await
            }
            async fn save(
                &self,
                name: &str,
                position: u64,
                state: Option<Vec<u8>>,
            ) -> Result<(), StoreError> {
                (**self).save(name, position, state).await
            }
            async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
                (**self).try_lease(name).await
            }
            async fn leases_held(&self, names: &[String]) -> Result<Option<Vec<bool>>, StoreError> {
                (**self).leases_held(names).await
            }
        }
    };
}

forward_event_store!(Arc<T>);
forward_event_store!(Box<T>);

/// A backend that is all three stores at once; `Arc<dyn Store>` is a store too, which lets a
/// program choose its backend at run time.
pub trait Store: EventStore + SnapshotStore + CheckpointStore {}

impl<T: EventStore + SnapshotStore + CheckpointStore + ?Sized> Store for T {}
