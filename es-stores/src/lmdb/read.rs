//! The read path: short read transactions on the calling task, in chunks of [`READ_CHUNK`]
//! events with a yield to the runtime between them, so readers never wait for the writer and
//! never hold a transaction across an `.await`.

use std::ops::Bound;

use es_core::store::{
    Checkpoint, EventFilter, FilteredPage, RecordedEvent, Snapshot, StoreError, StreamId,
};
use heed::RoTxn;
use heed::types::Bytes;

use super::codec;
use super::lifecycle::Shared;
use super::open::{BeU64, heed_error};
use super::pages::ReadRange;
use super::pending::View;

/// Events read per read transaction; readers yield to the runtime between chunks.
const READ_CHUNK: usize = 2048;
/// The most events a scan reserves room for up front (a page of a few chunks is then never
/// moved as it grows).
const MAX_RESERVED: usize = 8 * READ_CHUNK;
/// The events a stream read reserves room for up front.
const SHORT_STREAM: usize = 16;

fn decode_recorded(bytes: &[u8], position: u64) -> Result<RecordedEvent, StoreError> {
    let event = codec::decode_event(bytes, position)?;
    Ok(RecordedEvent {
        position,
        stream: event.stream,
        sequence: event.sequence,
        event_type: event.event_type,
        event_version: event.event_version,
        timestamp: event.timestamp,
        envelope: es_core::store::Envelope {
            command_id: event.command_id,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            tags: event.tags,
            metadata: event.metadata,
        },
        payload: event.payload,
    })
}

fn missing(position: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "the stream index points at position {position}, which is missing"
    ))
}

/// Reads the events of one stream from the log by position. A stream's events are often
/// contiguous in the global log (written in batches): once two consecutive positions show up,
/// it walks the log with a cursor instead of looking each position up from the root.
#[derive(Default)]
struct LogWalk<'t> {
    log: Option<heed::RoRange<'t, BeU64, Bytes>>,
    previous: u64,
}

impl<'t> LogWalk<'t> {
    fn event(
        &mut self,
        shared: &Shared,
        txn: &'t RoTxn<'_>,
        position: u64,
    ) -> Result<RecordedEvent, StoreError> {
        let contiguous = self.previous.checked_add(1) == Some(position);
        self.previous = position;
        if !contiguous {
            self.log = None;
            return shared.event_at(txn, position);
        }
        if self.log.is_none() {
            self.log = Some(
                shared
                    .dbs
                    .events
                    .range(txn, &(position..))
                    .map_err(|e| heed_error("read a stream", e))?,
            );
        }
        match self.log.as_mut().and_then(Iterator::next).transpose() {
            Ok(Some((at, bytes))) if at == position => decode_recorded(bytes, position),
            Ok(_) => Err(missing(position)),
            Err(e) => Err(heed_error("read a stream", e)),
        }
    }
}

impl Shared {
    /// Runs `f` in a fresh read transaction, under a shared hold of the resize gate.
    fn read<R>(
        &self,
        context: &str,
        f: impl FnOnce(&RoTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _gate = self.resize_gate.read();
        let txn = self.env.read_txn().map_err(|e| heed_error(context, e))?;
        f(&txn)
    }

    fn event_at(&self, txn: &RoTxn<'_>, position: u64) -> Result<RecordedEvent, StoreError> {
        let bytes = self
            .dbs
            .events
            .get(txn, &position)
            .map_err(|e| heed_error("read an event", e))?
            .ok_or_else(|| missing(position))?;
        decode_recorded(bytes, position)
    }

    /// Scans up to `limit` events of the global log from `from_position`, in short read
    /// transactions, decoding those `accept` takes (all when `None`). Skipped events are never
    /// decoded: only their type is looked at.
    pub(super) async fn scan_log(
        &self,
        from_position: u64,
        limit: usize,
        accept: Option<EventFilter>,
    ) -> Result<FilteredPage, StoreError> {
        // Room for the events the published head says there are (the scan may find a few
        // more, committed since): a reader at the head of the log (a projection following it)
        // does not reserve a whole page for the handful of new events.
        let published = (*self.head.borrow()).saturating_sub(from_position.max(1)) + 1;
        let mut page = FilteredPage {
            events: Vec::with_capacity(if accept.is_none() {
                limit
                    .min(MAX_RESERVED)
                    .min(usize::try_from(published).unwrap_or(usize::MAX))
            } else {
                0
            }),
            ..FilteredPage::default()
        };
        let mut next = from_position.max(1);
        loop {
            let chunk = (limit - page.scanned).min(READ_CHUNK);
            if chunk == 0 {
                break;
            }
            let before = page.scanned;
            let read = self.read("read the global log", |txn| {
                let mut read = ReadRange::default();
                let iter = self
                    .dbs
                    .events
                    .range(txn, &(next..))
                    .map_err(|e| heed_error("read the global log", e))?;
                for entry in iter.take(chunk) {
                    let (position, bytes) =
                        entry.map_err(|e| heed_error("read the global log", e))?;
                    read.add(bytes);
                    match &accept {
                        Some(filter) => {
                            let (aggregate_type, event_type) = codec::head_of(bytes, position)?;
                            // `EventFilter::matches_head` on the stored bytes: an aggregate
                            // type that is not UTF-8 fails in `decode_recorded` when accepted.
                            if filter
                                .aggregate_type
                                .is_none_or(|wanted| wanted.as_bytes() == aggregate_type)
                                && (filter.event_type)(event_type)
                            {
                                let event = decode_recorded(bytes, position)?;
                                if filter.envelope.is_none_or(|f| f(&event)) {
                                    page.events.push(event);
                                }
                            }
                        }
                        None => page.events.push(decode_recorded(bytes, position)?),
                    }
                    page.scanned += 1;
                    page.scanned_to = position;
                }
                Ok(read)
            })?;
            // The pages this chunk read are not needed any more (see `pages.rs`).
            self.scanned_pages.note(read, &self.resize_gate);
            if page.scanned - before < chunk {
                break;
            }
            next = page.scanned_to + 1;
            tokio::task::yield_now().await;
        }
        Ok(page)
    }

    /// Up to `limit` events of the stream with key `key`, from sequence `from_sequence`.
    pub(super) async fn read_stream(
        &self,
        key: &[u8],
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Room for a short stream, grown as events are found: most streams a kernel loads are
        // short or empty, and room for a whole chunk (hundreds of KiB) reserved for each would
        // be allocated and freed at every load.
        let mut out = Vec::with_capacity(limit.min(SHORT_STREAM));
        let mut next = from_sequence.max(1);
        let end = codec::suffixed(key, u64::MAX);
        loop {
            let chunk = (limit - out.len()).min(READ_CHUNK);
            if chunk == 0 {
                break;
            }
            let start = codec::suffixed(key, next);
            let before = out.len();
            let stale = self.read("read a stream", |txn| {
                let view = View::of(&self.dbs, txn)?;
                let range = (
                    Bound::Included(start.as_slice()),
                    Bound::Included(end.as_slice()),
                );
                let iter = self
                    .dbs
                    .index
                    .range(txn, &range)
                    .map_err(|e| heed_error("read a stream", e))?;
                let mut walk = LogWalk::default();
                for entry in iter.take(chunk) {
                    let (_, position) = entry.map_err(|e| heed_error("read a stream", e))?;
                    out.push(walk.event(self, txn, position)?);
                }
                // The events the index does not list yet (see `pending.rs`): those after the
                // last one it gave, which may be pending still although it holds them.
                let room = chunk - (out.len() - before);
                if room > 0 {
                    let from = match out.get(before..).and_then(<[_]>::last) {
                        Some(last) => last.sequence + 1,
                        None => next,
                    };
                    let Ok(positions) = self.pending.read().positions(key, view, from, room) else {
                        out.truncate(before);
                        return Ok(true);
                    };
                    for position in positions {
                        out.push(walk.event(self, txn, position)?);
                    }
                }
                Ok(false)
            })?;
            if stale {
                // This snapshot predates the last index flush: read the chunk again.
                continue;
            }
            let read = out.len() - before;
            match out.last() {
                Some(last) if read == chunk => next = last.sequence + 1,
                _ => break,
            }
            tokio::task::yield_now().await;
        }
        Ok(out)
    }

    /// The version of the stream with key `key` (0 when it has no events).
    pub(super) fn stream_version(&self, key: &[u8]) -> Result<u64, StoreError> {
        loop {
            let version = self.read("read a stream version", |txn| {
                let view = View::of(&self.dbs, txn)?;
                let Ok(pending) = self.pending.read().visible_version(key, view) else {
                    return Ok(None);
                };
                if let Some(version) = pending {
                    return Ok(Some(version));
                }
                let version = self
                    .dbs
                    .heads
                    .get(txn, key)
                    .map_err(|e| heed_error("read a stream version", e))?;
                Ok(Some(version.unwrap_or(0)))
            })?;
            // `None`: the snapshot predates the last index flush; read again.
            if let Some(version) = version {
                return Ok(version);
            }
        }
    }

    /// The position of the last event (0 when the log is empty).
    pub(super) fn head_position(&self) -> Result<u64, StoreError> {
        self.read("read the head position", |txn| self.dbs.head_position(txn))
    }

    /// The latest snapshot of `stream`, whose key is `key`.
    pub(super) fn load_latest(
        &self,
        stream: &StreamId,
        key: &[u8],
    ) -> Result<Option<Snapshot>, StoreError> {
        self.read("load a snapshot", |txn| {
            let mut iter = self
                .dbs
                .snapshots
                .rev_prefix_iter(txn, key)
                .map_err(|e| heed_error("load a snapshot", e))?;
            match iter.next() {
                Some(entry) => {
                    let (key, bytes) = entry.map_err(|e| heed_error("load a snapshot", e))?;
                    let version = codec::key_suffix(key, "snapshot key")?;
                    codec::decode_snapshot(stream, version, bytes).map(Some)
                }
                None => Ok(None),
            }
        })
    }

    /// The checkpoint of projection `name`, whose key is `key`.
    pub(super) fn load_checkpoint(
        &self,
        name: &str,
        key: &[u8],
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.read("load a checkpoint", |txn| {
            match self
                .dbs
                .checkpoints
                .get(txn, key)
                .map_err(|e| heed_error("load a checkpoint", e))?
            {
                Some(bytes) => codec::decode_checkpoint(name, bytes).map(Some),
                None => Ok(None),
            }
        })
    }
}
