//! The bulk path of `append_many`: each statement of a batch is written in one transaction with
//! binary `COPY`, instead of the group-commit statement [`APPEND`](super::sql::APPEND).
//!
//! `APPEND` decides and inserts in one statement, which suits the lanes' small batches; on the
//! thousands of events of a copy its per-event work (a version read and a window-function row
//! per request, array subscripts per event, the insert in request order) kept a copy to about
//! 25,000 events/s. Here the same decision takes one transaction of three statements:
//!
//! 1. [`BULK_HEADS`](super::sql::BULK_HEADS): the transaction's id and time, and the version of
//!    each stream of the batch that needs it, read once per stream: not for a stream whose first
//!    append expects no stream or a version the store knows the stream reached (see
//!    [`Bulk::known`]; a copy reads none);
//! 2. the client decides each request exactly as `APPEND` would ([`decide`]) and sends the
//!    written events with binary `COPY` ([`COPY_EVENTS`](super::sql::COPY_EVENTS)), sorted by
//!    stream and sequence: the unique index on `(stream_type, stream_id, sequence)` is then
//!    updated in its own order (measured on 8,192 events of 8,192 streams over 500,000 stored
//!    events: 65-85 ms, against 90-150 ms in request order). Positions are still
//!    `(xid8 << 16) + n`, `n` the event's 1-based index in the statement in request order, and
//!    the events without a timestamp get the transaction's time, as with `APPEND`;
//! 3. `COMMIT`.
//!
//! The decision is as atomic as `APPEND`'s: a writer that wrote one of these sequences after step
//! 1 (or before it, for a version not read) makes the `COPY` fail with a unique violation. Any
//! failure before the commit is sent leaves nothing written (the transaction rolls back), and
//! the batch is then written by the statement path (`Lane::commit`), which retries races and
//! isolates a faulty request as before. A failed commit is reported as the statement path
//! reports it (it may have committed).

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use es_core::store::{ExpectedVersion, NewEvent, StreamId};
use tracing::debug;

use super::error::{self, Op};
use super::read::split_timestamp;
use super::writer::{Lane, Outcome, Pending, expected_exact};

/// Why a bulk transaction failed.
enum Failure {
    /// Before the commit was sent: nothing was written.
    Before(sqlx::Error),
    /// The commit itself: it may or may not have committed.
    Commit(sqlx::Error),
}

/// The most streams [`Bulk`] remembers a version of (about 150 bytes each); past it, it forgets
/// them all and reads their versions again.
const KNOWN_STREAMS: usize = 1 << 18;

/// The lane `append_many` writes through, and the versions its streams are known to have
/// reached.
pub(crate) struct Bulk {
    lane: Lane,
    /// Per stream, a version it is known to have reached: one this store wrote or read
    /// committed. Events are never deleted, so the stream holds an event at every sequence up
    /// to it, forever. An append expecting such a version `v` (or no stream) is then decided
    /// without reading the stream's version: the stream is at `v` exactly when it has no event
    /// `v + 1`, which the unique index checks as the events are inserted (a violation rolls the
    /// transaction back, and the append statement decides the batch from the versions it reads).
    /// A copy thus reads no version at all: each stream's first append expects no stream, and
    /// each later one the version the store wrote before.
    known: HashMap<StreamId, u64>,
}

impl Bulk {
    /// The bulk path through `lane`, knowing no stream yet.
    pub(crate) fn new(lane: Lane) -> Self {
        Self {
            lane,
            known: HashMap::new(),
        }
    }

    /// Writes `batch` (appends that one statement may hold: streams once or as chains, at most
    /// 65,535 events) in one `COPY` transaction, answers every request in it and wakes the head
    /// refresher. Falls back to [`Lane::commit`] when the transaction fails before its commit.
    pub(crate) async fn commit(&mut self, batch: Vec<Pending>) {
        match self.write(&batch).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.iter().zip(&outcomes) {
                    if let Outcome::Written { before, .. } = outcome {
                        self.learn(&pending.stream, before + pending.events.len() as u64);
                    }
                }
                self.lane.answer(batch, outcomes);
            }
            Err(Failure::Before(error)) => {
                debug!(%error, appends = batch.len(), "bulk append rolled back; writing it with the append statement");
                self.lane.commit(batch, &mut None).await;
            }
            Err(Failure::Commit(error)) => {
                let mapped = error::map(error, Op::Write, "appending events");
                for pending in batch {
                    let _ = pending.reply.send(Err(mapped.clone()));
                }
            }
        }
    }

    /// Records that `stream` reached `version`.
    fn learn(&mut self, stream: &StreamId, version: u64) {
        match self.known.get_mut(stream) {
            Some(known) => *known = (*known).max(version),
            None => {
                if self.known.len() >= KNOWN_STREAMS {
                    self.known.clear();
                }
                self.known.insert(stream.clone(), version);
            }
        }
    }

    /// The version `stream` is at if an append expecting `expected` is to be written, when that
    /// needs no read (see [`Bulk::known`]).
    fn assumed(&self, stream: &StreamId, expected: ExpectedVersion) -> Option<u64> {
        match expected_exact(expected) {
            Some(0) => Some(0),
            Some(v) => self.known.get(stream).filter(|&&k| k >= v).map(|_| v),
            None => None,
        }
    }

    /// Runs the bulk transaction for `batch`.
    async fn write(&mut self, batch: &[Pending]) -> Result<Vec<Outcome>, Failure> {
        let (order, groups) = group(batch);
        // Per stream, its version: assumed (see `known`) or read in the transaction.
        let mut heads: Vec<Option<u64>> = Vec::with_capacity(groups.len());
        let mut types = Vec::new();
        let mut ids = Vec::new();
        for g in &groups {
            let first = &batch[order[g.start]];
            let head = self.assumed(&first.stream, first.expected);
            if head.is_none() {
                types.push(first.stream.aggregate_type.as_str());
                ids.push(first.stream.aggregate_id.as_str());
            }
            heads.push(head);
        }
        let mut tx = self.lane.pool.begin().await.map_err(Failure::Before)?;
        let (xid, now, read): (i64, DateTime<Utc>, Vec<i64>) =
            sqlx::query_as(&self.lane.sql.bulk_heads)
                .bind(types)
                .bind(ids)
                .fetch_one(&mut *tx)
                .await
                .map_err(Failure::Before)?;
        let unexpected = || {
            Failure::Before(sqlx::Error::Protocol(format!(
                "bulk append: unexpected transaction id {xid} or {} stream versions",
                read.len()
            )))
        };
        if read.len() != heads.iter().filter(|h| h.is_none()).count() {
            return Err(unexpected());
        }
        let mut read_versions = read.iter().map(|&v| u64::try_from(v).unwrap_or(0));
        let heads: Vec<u64> = heads
            .into_iter()
            .map(|h| h.or_else(|| read_versions.next()).unwrap_or(0))
            .collect();
        // An xid8 below 2^47 (140 trillion transactions) leaves room for the shift.
        let base = u64::try_from(xid)
            .ok()
            .and_then(|x| x.checked_mul(1 << 16))
            .ok_or_else(unexpected)?;
        let expected: Vec<ExpectedVersion> = batch.iter().map(|p| p.expected).collect();
        let decisions = decide(&expected, &order, &groups, &heads);
        // The 1-based index of each request's first event in the statement.
        let mut first = Vec::with_capacity(batch.len());
        let mut n = 1_u64;
        for p in batch {
            first.push(n);
            n += p.events.len() as u64;
        }
        let mut written = 0;
        let mut size = 0;
        for (p, d) in batch.iter().zip(&decisions) {
            if matches!(d, Decision::Write { .. }) {
                written += p.events.len();
                size += p
                    .events
                    .iter()
                    .map(|e| e.payload.len() + 160)
                    .sum::<usize>();
            }
        }
        if written > 0 {
            let mut rows = CopyRows::with_capacity(size);
            for &r in order.iter() {
                let Decision::Write { before } = decisions[r] else {
                    continue;
                };
                let p = &batch[r];
                for (j, (event, metadata)) in (0_u64..).zip(p.events.iter().zip(&p.metadata)) {
                    rows.event(
                        base + first[r] + j,
                        p,
                        before + 1 + j,
                        event,
                        metadata.as_deref(),
                        now,
                    );
                }
            }
            let Some(rows) = rows.finish() else {
                return Err(Failure::Before(sqlx::Error::Protocol(
                    "bulk append: an event does not fit PostgreSQL's binary COPY format".to_owned(),
                )));
            };
            let mut copy = tx
                .copy_in_raw(&self.lane.sql.copy_events)
                .await
                .map_err(Failure::Before)?;
            copy.send(rows).await.map_err(Failure::Before)?;
            copy.finish().await.map_err(Failure::Before)?;
            tx.commit().await.map_err(Failure::Commit)?;
        } else {
            // Nothing to write: every request conflicts, whatever the transaction's fate.
            tx.rollback().await.map_err(Failure::Before)?;
        }
        // The versions read are committed ones: the streams keep them whatever happened since.
        for (g, &head) in groups.iter().zip(&heads) {
            if head > 0 {
                self.learn(&batch[order[g.start]].stream, head);
            }
        }
        Ok(batch
            .iter()
            .zip(decisions)
            .zip(first)
            .map(|((p, d), first)| match d {
                Decision::Conflict { actual } => Outcome::Conflict { actual },
                Decision::Write { before } => Outcome::Written {
                    before,
                    positions: (first..first + p.events.len() as u64)
                        .map(|n| base + n)
                        .collect(),
                    timestamp: now,
                },
            })
            .collect())
    }
}

/// The requests of `batch` by stream: their indices sorted by stream type, stream id and index
/// in the batch, and the range of each stream's requests in that order (one range per stream,
/// so a stream's chain is in batch order).
fn group(batch: &[Pending]) -> (Vec<usize>, Vec<Range<usize>>) {
    let key = |i: usize| {
        let s = &batch[i].stream;
        (s.aggregate_type.as_str(), s.aggregate_id.as_str())
    };
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)));
    let mut groups: Vec<Range<usize>> = Vec::new();
    for (at, &i) in order.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if key(order[g.start]) == key(i) => g.end = at + 1,
            _ => groups.push(at..at + 1),
        }
    }
    (order, groups)
}

/// What the transaction does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Its stream is at `actual`, not at the version it expects.
    Conflict { actual: u64 },
    /// Its events are written after sequence `before`.
    Write { before: u64 },
}

/// Decides each request (`expected[i]` its expected version) as [`APPEND`](super::sql::APPEND)
/// does, given the requests grouped by stream (`order`, `groups`, from [`group`]) and each
/// stream's version `heads[g]` before the transaction: a request expecting any version is
/// written after the head (it is alone on its stream); in a chain, the requests before the one
/// expecting the head conflict, and that one and the rest are written after the version each
/// expects.
fn decide(
    expected: &[ExpectedVersion],
    order: &[usize],
    groups: &[Range<usize>],
    heads: &[u64],
) -> Vec<Decision> {
    let mut decisions = vec![Decision::Conflict { actual: 0 }; expected.len()];
    for (g, &head) in groups.iter().zip(heads) {
        let mut matched = false;
        for &r in &order[g.clone()] {
            decisions[r] = match expected_exact(expected[r]) {
                None => Decision::Write { before: head },
                Some(v) => {
                    matched |= v == head;
                    if matched {
                        Decision::Write { before: v }
                    } else {
                        Decision::Conflict { actual: head }
                    }
                }
            };
        }
    }
    decisions
}

/// `events` rows in PostgreSQL's binary `COPY` format, in the column order of
/// [`COPY_EVENTS`](super::sql::COPY_EVENTS).
struct CopyRows {
    buf: Vec<u8>,
    /// False once a value could not be encoded (a field longer than 2 GiB, a timestamp out of
    /// range); the rows are then not sent.
    ok: bool,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The type id of `text`, the element type of the `tags` array.
const TEXT_OID: i32 = 25;

impl CopyRows {
    /// The header, and room for about `capacity` bytes of rows.
    fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 32);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        // Flags (no OIDs), then the length of the header extension (none).
        buf.extend_from_slice(&0_i32.to_be_bytes());
        buf.extend_from_slice(&0_i32.to_be_bytes());
        Self { buf, ok: true }
    }

    /// One event's row.
    fn event(
        &mut self,
        position: u64,
        pending: &Pending,
        sequence: u64,
        event: &NewEvent,
        metadata: Option<&str>,
        now: DateTime<Utc>,
    ) {
        self.buf.extend_from_slice(&14_i16.to_be_bytes());
        self.int8_u(position);
        self.bytes(pending.stream.aggregate_type.as_bytes());
        self.bytes(pending.stream.aggregate_id.as_bytes());
        self.int8_u(sequence);
        self.bytes(event.event_type.as_bytes());
        self.int8(i64::from(event.event_version));
        self.jsonb(metadata.unwrap_or("{}"));
        self.bytes(&event.payload);
        self.opt_text(event.envelope.command_id.as_deref());
        self.opt_text(event.envelope.correlation_id.as_deref());
        self.opt_text(event.envelope.causation_id.as_deref());
        self.text_array(&event.envelope.tags);
        let (time, ns) = match event.timestamp {
            Some(t) => split_timestamp(t),
            None => (now, 0),
        };
        self.timestamptz(time);
        self.int4(ns);
    }

    /// The rows with the trailer, `None` if a value could not be encoded.
    fn finish(mut self) -> Option<Vec<u8>> {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        self.ok.then_some(self.buf)
    }

    fn len(&mut self, len: usize) {
        match i32::try_from(len) {
            Ok(len) => self.buf.extend_from_slice(&len.to_be_bytes()),
            Err(_) => self.ok = false,
        }
    }

    fn int8(&mut self, value: i64) {
        self.buf.extend_from_slice(&8_i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn int8_u(&mut self, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.int8(v),
            Err(_) => self.ok = false,
        }
    }

    fn int4(&mut self, value: i32) {
        self.buf.extend_from_slice(&4_i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// A `text` or `bytea` value.
    fn bytes(&mut self, value: &[u8]) {
        self.len(value.len());
        self.buf.extend_from_slice(value);
    }

    fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.bytes(v.as_bytes()),
            None => self.buf.extend_from_slice(&(-1_i32).to_be_bytes()),
        }
    }

    /// A `jsonb` value: the format version (1), then the JSON text.
    fn jsonb(&mut self, json: &str) {
        self.len(json.len() + 1);
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// A `text[]` value: dimensions (0 when empty, else 1), a flag (no nulls), the element type,
    /// the dimension's length and lower bound (1), then each element's length and bytes.
    fn text_array(&mut self, items: &[String]) {
        if items.is_empty() {
            self.len(12);
            self.buf.extend_from_slice(&0_i32.to_be_bytes());
            self.buf.extend_from_slice(&0_i32.to_be_bytes());
            self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
            return;
        }
        let size = 20 + items.iter().map(|t| 4 + t.len()).sum::<usize>();
        self.len(size);
        self.buf.extend_from_slice(&1_i32.to_be_bytes());
        self.buf.extend_from_slice(&0_i32.to_be_bytes());
        self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        self.len(items.len());
        self.buf.extend_from_slice(&1_i32.to_be_bytes());
        for item in items {
            self.bytes(item.as_bytes());
        }
    }

    /// A `timestamptz` value: microseconds since 2000-01-01 UTC (the server checks its range).
    fn timestamptz(&mut self, time: DateTime<Utc>) {
        match time.timestamp_micros().checked_sub(PG_EPOCH_MICROS) {
            Some(micros) => self.int8(micros),
            None => self.ok = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::writer::tests::pending;
    use super::*;

    #[test]
    fn requests_are_grouped_by_stream_in_batch_order() {
        use ExpectedVersion::{Any, Exact, NoStream};
        let batch = [
            pending("b", NoStream, 2),
            pending("a", Exact(3), 1),
            pending("b", Exact(2), 1),
            pending("c", Any, 1),
            pending("a", Exact(4), 2),
        ];
        let (order, groups) = group(&batch);
        assert_eq!(order, vec![1, 4, 0, 2, 3]);
        assert_eq!(groups, vec![0..2, 2..4, 4..5]);
        let expected: Vec<_> = batch.iter().map(|p| p.expected).collect();
        // a at 4: its first request conflicts, the second is written; b empty: both written;
        // c (any version) after its head.
        let decisions = decide(&expected, &order, &groups, &[4, 0, 9]);
        assert_eq!(
            decisions,
            vec![
                Decision::Write { before: 0 },
                Decision::Conflict { actual: 4 },
                Decision::Write { before: 2 },
                Decision::Write { before: 9 },
                Decision::Write { before: 4 },
            ]
        );
        // a at 7 and b at 1: every exact request conflicts with the stream's version.
        let decisions = decide(&expected, &order, &groups, &[7, 1, 0]);
        assert_eq!(decisions[1], Decision::Conflict { actual: 7 });
        assert_eq!(decisions[4], Decision::Conflict { actual: 7 });
        assert_eq!(decisions[0], Decision::Conflict { actual: 1 });
        assert_eq!(decisions[2], Decision::Conflict { actual: 1 });
        assert_eq!(decisions[3], Decision::Write { before: 0 });
    }

    #[test]
    fn rows_follow_the_binary_copy_format() {
        let p = pending("s", ExpectedVersion::Any, 1);
        let t = DateTime::from_timestamp(946_684_800, 1_500).unwrap_or_default();
        let mut event = NewEvent::new("E", vec![7]);
        event.envelope.tags = vec!["x".to_owned(), "yz".to_owned()];
        event.timestamp = Some(t);
        event.envelope.command_id = Some("c".into());
        let mut rows = CopyRows::with_capacity(0);
        rows.event(65_537, &p, 3, &event, None, t);
        let Some(buf) = rows.finish() else {
            panic!("the row is encodable");
        };
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&14_i16.to_be_bytes());
        let field = |want: &mut Vec<u8>, bytes: &[u8]| {
            want.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            want.extend_from_slice(bytes);
        };
        field(&mut want, &65_537_i64.to_be_bytes());
        field(&mut want, b"t");
        field(&mut want, b"s");
        field(&mut want, &3_i64.to_be_bytes());
        field(&mut want, b"E");
        field(&mut want, &1_i64.to_be_bytes());
        field(&mut want, b"\x01{}");
        field(&mut want, &[7]);
        field(&mut want, b"c");
        want.extend_from_slice(&(-1_i32).to_be_bytes());
        want.extend_from_slice(&(-1_i32).to_be_bytes());
        let mut array = Vec::new();
        for v in [1_i32, 0, 25, 2, 1, 1] {
            array.extend_from_slice(&v.to_be_bytes());
        }
        array.extend_from_slice(b"x");
        array.extend_from_slice(&2_i32.to_be_bytes());
        array.extend_from_slice(b"yz");
        field(&mut want, &array);
        // 1,500 ns after PostgreSQL's epoch: 1 µs, and 500 ns kept apart.
        field(&mut want, &1_i64.to_be_bytes());
        field(&mut want, &500_i32.to_be_bytes());
        want.extend_from_slice(&(-1_i16).to_be_bytes());
        assert_eq!(buf, want);
    }
}
