//! Group commit: append requests queue on the lane, which writes whatever has queued up in one
//! statement (one round trip, one transaction, one WAL flush), or a large batch in a few
//! statements at once (see [`MIN_PART`]), then answers every request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::store::{AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use super::error::{self, Op};
use super::sql::Queries;

/// The most events one transaction may write: positions are `(xid << 16) + index`.
pub(crate) const MAX_EVENTS_PER_TRANSACTION: usize = (1 << 16) - 1;

/// How many times a statement that lost a unique-constraint race is run again before the batch
/// is split (or, for a single append, given up as [`StoreError::Unavailable`]).
const RACE_RETRIES: usize = 8;

/// One queued append.
pub(crate) struct Pending {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    /// At least one event (an empty append never reaches a lane: the statement would report it
    /// as a conflict).
    pub(crate) events: Vec<NewEvent>,
    /// The events' metadata, already encoded as JSON objects (`None` for none).
    pub(crate) metadata: Vec<Option<String>>,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// What the append statement (or a bulk transaction) decided for one request.
pub(crate) enum Outcome {
    /// The stream was not at the expected version; it is at `actual`.
    Conflict { actual: u64 },
    /// Written after `before`, at these positions; the events without a timestamp of their
    /// own got `timestamp`.
    Written {
        before: u64,
        positions: Vec<u64>,
        timestamp: DateTime<Utc>,
    },
}

/// A failed batch statement, and whether the connection was had at all.
struct Failure {
    error: sqlx::Error,
    acquired: bool,
}

/// Signals the head refresher after a commit.
#[derive(Clone)]
pub(crate) struct Committed {
    /// Wakes the head refresher.
    pub(crate) wake: Arc<Notify>,
    /// Asks the head refresher to tell other nodes (NOTIFY) on its next round.
    pub(crate) notify_others: Arc<AtomicBool>,
}

/// One lane: a task that owns a queue and writes its batches one after another.
pub(crate) struct Lane {
    pub(crate) pool: PgPool,
    /// The statements; a lane runs [`APPEND`](super::sql::APPEND).
    pub(crate) sql: Arc<Queries>,
    pub(crate) max_appends: usize,
    pub(crate) max_events: usize,
    pub(crate) committed: Committed,
    /// Appends per batch.
    pub(crate) group_size: metrics::Histogram,
    /// Into how many statements, on as many connections at once, a large batch may be split
    /// (see [`MIN_PART`]).
    pub(crate) parallel: usize,
    /// The most appends of one statement (the builder's `max_batch`; a batch holds up to
    /// `parallel` times as many).
    pub(crate) max_part: usize,
}

/// The fewest appends of one statement of a split batch: a batch is split only when each part
/// gets at least this many.
///
/// A batch is one statement, so under a moderate load the lane's batches stay large: each
/// statement costs the server a fixed part (parse, plan, commit, the head refresh after it)
/// besides its rows, and two transactions in flight at once hold the readable head (and so
/// both answers) back until the older one commits. Measured on W1 with 64 clients (two cores,
/// the server on the same machine, 60,000 commands): with two lanes writing side by side the
/// database committed 15.4k transactions (appends, head refreshes, reads), with one lane 9.5k,
/// and the server used a fifth less CPU. Under a heavy load one statement of hundreds of events keeps one server core busy
/// for milliseconds, and the parts of a split batch use the others.
pub(crate) const MIN_PART: usize = 64;

/// How long a part of a split batch waits for a connection of its own before it is left to the
/// lane's connection (after the other parts).
const PART_CONNECTION_WAIT: Duration = Duration::from_millis(100);

impl Lane {
    /// Runs until every sender of `rx` is gone and the queue is drained.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        let mut deferred: VecDeque<Pending> = VecDeque::new();
        // The connection of a busy lane: kept from one batch to the next while requests keep
        // coming, given back to the pool when the queue has stayed empty for a moment (see
        // `held`).
        let mut held: Option<PoolConnection<Postgres>> = None;
        // The connections of the other parts of split batches, kept while batches keep being
        // split.
        let mut extra: Vec<Option<PoolConnection<Postgres>>> = Vec::new();
        loop {
            let first = match deferred.pop_front() {
                Some(p) => p,
                None => match rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => {
                        // Idle: the other parts' connections go back to the pool at once.
                        extra.clear();
                        match super::held::next_request(&mut rx, &mut held).await {
                            Some(p) => p,
                            None => return,
                        }
                    }
                },
            };
            let mut events = first.events.len();
            // Streams with a request in the batch, and the version the last one leaves if a
            // further request may chain onto it (see `chain_end`).
            let mut chains: HashMap<StreamId, Option<u64>> = HashMap::new();
            chains.insert(first.stream.clone(), chain_end(&first));
            // Streams with a request left for a later batch: their later requests wait too.
            let mut blocked: HashSet<StreamId> = HashSet::new();
            let mut batch = vec![first];
            let mut later = VecDeque::new();
            // Earlier deferred requests first, then whatever queued up since, in arrival
            // order. Several requests of one stream go in one batch only as a chain (each
            // expecting the version the one before leaves), which the statement decides as if
            // they ran one after another.
            let mut from_queue = false;
            loop {
                if batch.len() >= self.max_appends {
                    break;
                }
                let next = match deferred.pop_front() {
                    Some(p) => p,
                    None => {
                        from_queue = true;
                        match rx.try_recv() {
                            Ok(p) => p,
                            Err(_) => break,
                        }
                    }
                };
                let fits = events + next.events.len() <= self.max_events;
                let joins = !blocked.contains(&next.stream)
                    && match chains.get(&next.stream) {
                        None => true,
                        Some(end) => end.is_some() && *end == expected_exact(next.expected),
                    };
                if !fits || !joins {
                    blocked.insert(next.stream.clone());
                    later.push_back(next);
                    if !fits && from_queue {
                        break;
                    }
                } else {
                    events += next.events.len();
                    chains.insert(next.stream.clone(), chain_end(&next));
                    batch.push(next);
                }
            }
            later.extend(deferred.drain(..));
            deferred = later;
            self.group_size.record(batch.len() as f64);
            let mut parts = split(batch, self.parallel, self.max_part);
            match parts.pop() {
                Some(last) if !parts.is_empty() => {
                    extra.resize_with(parts.len(), || None);
                    let ((), left) = tokio::join!(
                        self.commit(last, &mut held),
                        self.commit_parts(parts, &mut extra)
                    );
                    // Parts that found no connection at once: one after another on the lane's.
                    for part in left {
                        self.commit(part, &mut held).await;
                    }
                }
                Some(only) => {
                    extra.clear();
                    self.commit(only, &mut held).await;
                }
                None => {}
            }
        }
    }

    /// Commits `parts` at once, part `i` on connection slot `i`; returns the parts for which no
    /// connection could be had within [`PART_CONNECTION_WAIT`].
    fn commit_parts<'a>(
        &'a self,
        mut parts: Vec<Vec<Pending>>,
        slots: &'a mut [Option<PoolConnection<Postgres>>],
    ) -> Pin<Box<dyn Future<Output = Vec<Vec<Pending>>> + Send + 'a>> {
        Box::pin(async move {
            let Some((slot, rest)) = slots.split_first_mut() else {
                return parts;
            };
            let Some(part) = parts.pop() else {
                return parts;
            };
            let (mine, mut left) = tokio::join!(
                self.commit_on_its_own(part, slot),
                self.commit_parts(parts, rest)
            );
            left.extend(mine);
            left
        })
    }

    /// Commits one part of a split batch on `slot`, taking a connection from the pool first if
    /// it has none; gives the part back if none comes within [`PART_CONNECTION_WAIT`] (a pool
    /// whose connections are all in use: the lane's own connection writes it after the others,
    /// rather than the part waiting for a connection the lane itself holds).
    async fn commit_on_its_own(
        &self,
        part: Vec<Pending>,
        slot: &mut Option<PoolConnection<Postgres>>,
    ) -> Option<Vec<Pending>> {
        if slot.is_none() {
            match tokio::time::timeout(PART_CONNECTION_WAIT, self.pool.acquire()).await {
                Ok(Ok(conn)) => *slot = Some(conn),
                _ => return Some(part),
            }
        }
        self.commit(part, slot).await;
        None
    }

    /// Writes `batch` (on the `held` connection if there is one, which it then keeps), answers
    /// every request in it and wakes the head refresher.
    pub(crate) async fn commit(
        &self,
        batch: Vec<Pending>,
        held: &mut Option<PoolConnection<Postgres>>,
    ) {
        let mut attempts = 0;
        loop {
            match self.write(&batch, held).await {
                Ok(outcomes) => {
                    self.answer(batch, outcomes);
                    return;
                }
                Err(failure) => {
                    if failure.acquired && error::is_unique_violation(&failure.error) {
                        // Another writer (another node) wrote one of these sequences between our
                        // read of the heads and our insert, and has committed: read again.
                        attempts += 1;
                        if attempts < RACE_RETRIES {
                            debug!(attempts, "append raced with another writer; retrying");
                            continue;
                        }
                    }
                    let op = if failure.acquired {
                        Op::Write
                    } else {
                        Op::Acquire
                    };
                    let mapped = error::map(failure.error, op, "appending events");
                    let isolate = batch.len() > 1
                        && matches!(mapped, StoreError::Backend { .. } | StoreError::Corrupt(_));
                    if isolate || (batch.len() > 1 && attempts >= RACE_RETRIES) {
                        // One request may be at fault: write them one by one so that only it fails.
                        warn!(error = %mapped, appends = batch.len(), "batch append failed; retrying its appends one by one");
                        for pending in batch {
                            Box::pin(self.commit(vec![pending], held)).await;
                        }
                        return;
                    }
                    let mapped = if attempts >= RACE_RETRIES {
                        StoreError::Unavailable(format!(
                            "appending events: lost {attempts} races with concurrent writers of the same stream"
                        ))
                    } else {
                        mapped
                    };
                    for pending in batch {
                        let _ = pending.reply.send(Err(mapped.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// Answers every request of the committed `batch` with its outcome (in the same order) and
    /// wakes the head refresher if anything was written.
    pub(crate) fn answer(&self, batch: Vec<Pending>, outcomes: Vec<Outcome>) {
        if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Written { .. }))
        {
            self.committed.notify_others.store(true, Ordering::Release);
            self.committed.wake.notify_one();
        }
        for (pending, outcome) in batch.into_iter().zip(outcomes) {
            let result = match outcome {
                Outcome::Conflict { actual } => Err(StoreError::Conflict {
                    expected: pending.expected,
                    actual,
                }),
                Outcome::Written {
                    before,
                    positions,
                    timestamp,
                } => Ok(AppendResult::recorded(
                    &pending.stream,
                    before,
                    positions,
                    timestamp,
                    pending.events,
                )),
            };
            // The caller may have given up waiting; the write stands either way.
            let _ = pending.reply.send(result);
        }
    }

    /// Runs the append statement for `batch` (one round trip, autocommit) on the `held`
    /// connection, taking one from the pool first if there is none. A connection that failed
    /// is given back, so that the pool tests it.
    async fn write(
        &self,
        batch: &[Pending],
        held: &mut Option<PoolConnection<Postgres>>,
    ) -> Result<Vec<Outcome>, Failure> {
        let n = batch.len();
        let total: usize = batch.iter().map(|p| p.events.len()).sum();
        let mut req_idx = Vec::with_capacity(n);
        let mut req_type = Vec::with_capacity(n);
        let mut req_id = Vec::with_capacity(n);
        let mut req_expected = Vec::with_capacity(n);
        let mut ev_idx = Vec::with_capacity(total);
        let mut ev_ord = Vec::with_capacity(total);
        let mut ev_type = Vec::with_capacity(total);
        let mut ev_version = Vec::with_capacity(total);
        let mut ev_meta = Vec::with_capacity(total);
        let mut ev_payload = Vec::with_capacity(total);
        let mut ev_command = Vec::with_capacity(total);
        let mut ev_correlation = Vec::with_capacity(total);
        let mut ev_causation = Vec::with_capacity(total);
        let mut ev_tag_from = Vec::with_capacity(total);
        let mut ev_tag_to = Vec::with_capacity(total);
        let mut ev_time = Vec::with_capacity(total);
        let mut ev_time_ns = Vec::with_capacity(total);
        let mut ev_stream_type = Vec::with_capacity(total);
        let mut ev_stream_id = Vec::with_capacity(total);
        let mut all_tags: Vec<&str> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            // Both bounded by MAX_EVENTS_PER_TRANSACTION, so they fit an i32.
            let idx = i32::try_from(i).unwrap_or(i32::MAX);
            req_idx.push(idx);
            req_type.push(p.stream.aggregate_type.as_str());
            req_id.push(p.stream.aggregate_id.as_str());
            req_expected.push(match p.expected {
                ExpectedVersion::Any => -1_i64,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
            });
            for (j, (e, meta)) in p.events.iter().zip(&p.metadata).enumerate() {
                ev_idx.push(idx);
                ev_stream_type.push(p.stream.aggregate_type.as_str());
                ev_stream_id.push(p.stream.aggregate_id.as_str());
                ev_ord.push(i32::try_from(j + 1).unwrap_or(i32::MAX));
                ev_type.push(e.event_type.as_str());
                ev_version.push(i64::from(e.event_version));
                ev_meta.push(meta.as_deref());
                ev_payload.push(e.payload.as_slice());
                ev_command.push(e.envelope.command_id.as_deref());
                ev_correlation.push(e.envelope.correlation_id.as_deref());
                ev_causation.push(e.envelope.causation_id.as_deref());
                // 1-based inclusive bounds into `all_tags` (empty when `to < from`); a
                // statement holds far fewer than i32::MAX tags (65,535 events, ids and tags
                // bounded), so the conversions cannot saturate in practice.
                ev_tag_from.push(i32::try_from(all_tags.len() + 1).unwrap_or(i32::MAX));
                all_tags.extend(e.envelope.tags.iter().map(String::as_str));
                ev_tag_to.push(i32::try_from(all_tags.len()).unwrap_or(i32::MAX));
                let (time, ns) = match e.timestamp {
                    Some(t) => {
                        let (micros, ns) = super::read::split_timestamp(t);
                        (Some(micros), ns)
                    }
                    None => (None, 0),
                };
                ev_time.push(time);
                ev_time_ns.push(ns);
            }
        }
        let conn = match held {
            Some(conn) => conn,
            None => held.insert(self.pool.acquire().await.map_err(|error| Failure {
                error,
                acquired: false,
            })?),
        };
        let rows: Result<Vec<AppendRow>, sqlx::Error> = sqlx::query_as(&self.sql.append)
            .bind(req_idx)
            .bind(req_type)
            .bind(req_id)
            .bind(req_expected)
            .bind(ev_idx)
            .bind(ev_ord)
            .bind(ev_type)
            .bind(ev_version)
            .bind(ev_meta)
            .bind(ev_payload)
            .bind(ev_command)
            .bind(ev_correlation)
            .bind(ev_causation)
            .bind(ev_tag_from)
            .bind(ev_tag_to)
            .bind(ev_time)
            .bind(ev_time_ns)
            .bind(all_tags)
            .bind(ev_stream_type)
            .bind(ev_stream_id)
            .fetch_all(&mut **conn)
            .await;
        match rows {
            Ok(rows) => Ok(outcomes(batch, rows)),
            Err(error) => {
                // Given back for the pool to test: a connection the server ended (an
                // operator's `pg_terminate_backend`, a restart) fails with a database error too.
                drop(held.take());
                Err(Failure {
                    error,
                    acquired: true,
                })
            }
        }
    }
}

/// The exact version `expected` names (`NoStream` is 0), `None` for any version.
pub(crate) fn expected_exact(expected: ExpectedVersion) -> Option<u64> {
    match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(v) => Some(v),
    }
}

/// The version `pending` leaves its stream at if it is written, when that is known in advance
/// (it expects an exact version): a request expecting that version may follow it in the same
/// statement. `None` for a request expecting any version, which is alone on its stream.
pub(crate) fn chain_end(pending: &Pending) -> Option<u64> {
    expected_exact(pending.expected).map(|v| v.saturating_add(pending.events.len() as u64))
}

/// One row of the append statement's answer: the request's index (-1 for a written event),
/// its stream's version before the statement (0 for a written event), and for a written event
/// its position, sequence and the transaction's time (the timestamp of the events that carry
/// none; all null for a request whose expectation failed).
type AppendRow = (i32, i64, Option<i64>, Option<i64>, Option<DateTime<Utc>>);

/// The (position, sequence) of each written event of one request, and the transaction's time.
type WrittenEvents = (Vec<(u64, u64)>, Option<DateTime<Utc>>);

/// Reads the statement's verdict on each request of `batch` from its `rows`.
///
/// The statement (see [`APPEND`](super::sql::APPEND)) answers every request it was given, once
/// per written event or once for a conflict, so a differently shaped answer is a bug in it, not
/// a state of the database: such a case is `unreachable!`.
fn outcomes(batch: &[Pending], rows: Vec<AppendRow>) -> Vec<Outcome> {
    // The request of the event at statement index n (1-based) is owner[n - 1].
    let owner: Vec<usize> = batch
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::repeat_n(i, p.events.len()))
        .collect();
    let mut conflicts: Vec<Option<u64>> = vec![None; batch.len()];
    // Per request: (position, sequence) of its written events, and the time.
    let mut written: Vec<WrittenEvents> = batch.iter().map(|_| (Vec::new(), None)).collect();
    for (idx, version, position, sequence, timestamp) in rows {
        match (position, sequence, timestamp) {
            (None, None, None) => {
                let slot = usize::try_from(idx)
                    .ok()
                    .and_then(|i| conflicts.get_mut(i))
                    .unwrap_or_else(|| {
                        unreachable!(
                            "the append statement answered request {idx}, which it was not given"
                        )
                    });
                *slot = Some(u64::try_from(version).unwrap_or_else(|_| {
                    unreachable!(
                        "a stream version is 0 or a sequence, and sequences are CHECKed > 0"
                    )
                }));
            }
            (Some(position), Some(sequence), Some(timestamp)) => {
                let (position, sequence) = match (u64::try_from(position), u64::try_from(sequence))
                {
                    (Ok(p), Ok(s)) => (p, s),
                    _ => unreachable!("positions and sequences are never negative"),
                };
                // The mask keeps 16 bits: the cast cannot truncate.
                let n = (position & 0xFFFF) as usize;
                let request = n
                    .checked_sub(1)
                    .and_then(|i| owner.get(i))
                    .copied()
                    .unwrap_or_else(|| {
                        unreachable!("the append statement wrote event {n}, which it was not given")
                    });
                let slot = &mut written[request];
                slot.0.push((position, sequence));
                slot.1 = Some(timestamp);
            }
            _ => {
                unreachable!("an inserted event has the transaction's time, a conflict has none")
            }
        }
    }
    conflicts
        .into_iter()
        .zip(written)
        .zip(batch)
        .map(|((conflict, (mut events, timestamp)), pending)| {
            if let Some(actual) = conflict {
                return Outcome::Conflict { actual };
            }
            if events.is_empty() {
                unreachable!("the append statement answers every request it is given")
            }
            if events.len() != pending.events.len() {
                unreachable!(
                    "the append statement inserts all of a request's events or none, not {} of {}",
                    events.len(),
                    pending.events.len()
                )
            }
            events.sort_unstable();
            let before = events
                .first()
                .map_or(0, |&(_, sequence)| sequence.saturating_sub(1));
            match timestamp {
                Some(timestamp) => Outcome::Written {
                    before,
                    positions: events.into_iter().map(|(p, _)| p).collect(),
                    timestamp,
                },
                None => unreachable!("the append statement answers every request it is given"),
            }
        })
        .collect()
}

/// `batch` in at most `parallel` parts, as many as parts of at least [`MIN_PART`] appends allow,
/// and more if a part would otherwise hold over `max_part` appends; each
/// stream's requests in one part (a chain stays in order within its statement).
fn split(batch: Vec<Pending>, parallel: usize, max_part: usize) -> Vec<Vec<Pending>> {
    let needed = batch.len().div_ceil(max_part.max(1));
    let n = parallel.min((batch.len() / MIN_PART).max(needed)).max(1);
    if n == 1 {
        return vec![batch];
    }
    let mut parts: Vec<Vec<Pending>> = (0..n).map(|_| Vec::new()).collect();
    // Streams go to the parts in turn, as they first appear.
    let mut part_of: HashMap<StreamId, usize> = HashMap::new();
    for pending in batch {
        let next = part_of.len() % n;
        let part = *part_of.entry(pending.stream.clone()).or_insert(next);
        parts[part].push(pending);
    }
    parts.retain(|part| !part.is_empty());
    parts
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A request to append `events` empty events to stream `t/id`, expecting `expected` (its
    /// answer is dropped).
    pub(in crate::postgres) fn pending(
        id: &str,
        expected: ExpectedVersion,
        events: usize,
    ) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            stream: StreamId::new("t", id),
            expected,
            events: (0..events)
                .map(|_| NewEvent::new("E", Vec::new()))
                .collect(),
            metadata: vec![None; events],
            reply,
        }
    }

    #[test]
    fn outcomes_follow_the_statement_rows() {
        let now = Utc::now();
        let batch = [
            pending("a", ExpectedVersion::Any, 2),
            pending("b", ExpectedVersion::Any, 1),
        ];
        let xid = 5_i64 << 16;
        // In no particular order; an event's request is found from its index in the position.
        let rows = vec![
            (-1, 0, Some(xid + 2), Some(5), Some(now)),
            (1, 7, None, None, None),
            (-1, 0, Some(xid + 1), Some(4), Some(now)),
        ];
        let out = outcomes(&batch, rows);
        let first = (xid + 1) as u64;
        assert!(
            matches!(&out[0], Outcome::Written { before: 3, positions, timestamp }
                if positions == &[first, first + 1] && *timestamp == now)
        );
        assert!(matches!(out[1], Outcome::Conflict { actual: 7 }));
    }

    #[test]
    fn a_large_batch_is_split_by_stream_into_parts_of_at_least_min_part() {
        let ids = |parts: &[Vec<Pending>]| -> Vec<Vec<String>> {
            parts
                .iter()
                .map(|part| part.iter().map(|p| p.stream.aggregate_id.clone()).collect())
                .collect()
        };
        let small: Vec<Pending> = (0..2 * MIN_PART - 1)
            .map(|i| pending(&i.to_string(), ExpectedVersion::Any, 1))
            .collect();
        assert_eq!(
            split(small, 2, 512).len(),
            1,
            "a part would be under MIN_PART"
        );
        let tiny: Vec<Pending> = (0..3)
            .map(|i| pending(&i.to_string(), ExpectedVersion::Any, 1))
            .collect();
        assert_eq!(
            split(tiny, 3, 1).len(),
            3,
            "max_batch(1): one append per statement"
        );
        let one_lane: Vec<Pending> = (0..4 * MIN_PART)
            .map(|i| pending(&i.to_string(), ExpectedVersion::Any, 1))
            .collect();
        assert_eq!(split(one_lane, 1, 512).len(), 1);
        // Streams s0..s99, three chained requests each, interleaved as they arrive.
        let batch: Vec<Pending> = (0..3)
            .flat_map(|v| (0..100).map(move |i| (i, v)))
            .map(|(i, v)| pending(&format!("s{i}"), ExpectedVersion::Exact(v), 1))
            .collect();
        let parts = split(batch, 3, 512);
        assert_eq!(parts.len(), 3);
        let mut seen = HashSet::new();
        for (part, names) in parts.iter().zip(ids(&parts)) {
            assert!(part.len() >= MIN_PART, "{}", part.len());
            for name in names.iter().collect::<HashSet<_>>() {
                assert!(seen.insert(name.clone()), "{name} is in two parts");
            }
            // A stream's chain stays in arrival order.
            for name in &names {
                let versions: Vec<ExpectedVersion> = part
                    .iter()
                    .filter(|p| &p.stream.aggregate_id == name)
                    .map(|p| p.expected)
                    .collect();
                assert_eq!(
                    versions,
                    (0..3).map(ExpectedVersion::Exact).collect::<Vec<_>>()
                );
            }
        }
        assert_eq!(seen.len(), 100);
    }

    #[test]
    #[should_panic(expected = "answers every request")]
    fn a_request_without_an_answer_is_a_bug() {
        outcomes(&[pending("a", ExpectedVersion::Any, 1)], Vec::new());
    }
}
