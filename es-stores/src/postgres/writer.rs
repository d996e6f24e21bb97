//! Group commit: append requests queue on the lane (see `lane` for its loop), which writes
//! whatever has queued up in one statement (one round trip, one transaction, one WAL flush),
//! then answers every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use es_core::store::{AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{Notify, oneshot, watch};
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
    /// `subscribe()`'s head, moved at once after a commit whose events are readable at once.
    pub(crate) head: Arc<watch::Sender<u64>>,
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
    /// How many statements may be in flight at once (see `lane`).
    pub(crate) parallel: usize,
}

impl Lane {
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
                Ok((outcomes, alone)) => {
                    if alone {
                        self.publish_readable(&outcomes);
                    }
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

    /// Moves `subscribe()`'s head to the last event of `outcomes` (committed, and readable at
    /// once: the transaction was alone), so the appends' answers need not wait for the head
    /// refresher's round trip. The head only grows.
    fn publish_readable(&self, outcomes: &[Outcome]) {
        let last = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Written { positions, .. } => positions.last().copied(),
                Outcome::Conflict { .. } => None,
            })
            .max();
        if let Some(last) = last {
            super::head::raise(&self.committed.head, last);
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
                } => Ok(AppendResult::recorded_owned(
                    pending.stream,
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
    ) -> Result<(Vec<Outcome>, bool), Failure> {
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
/// its position, sequence, the transaction's time (the timestamp of the events that carry
/// none) and whether the transaction was alone (see [`APPEND`](super::sql::APPEND)); all null
/// for a request whose expectation failed.
type AppendRow = (
    i32,
    i64,
    Option<i64>,
    Option<i64>,
    Option<DateTime<Utc>>,
    Option<bool>,
);

/// The (position, sequence) of each written event of one request, and the transaction's time.
type WrittenEvents = (Vec<(u64, u64)>, Option<DateTime<Utc>>);

/// Reads the statement's verdict on each request of `batch` from its `rows`, and whether its
/// events are readable as soon as it commits (the transaction was alone).
///
/// The statement (see [`APPEND`](super::sql::APPEND)) answers every request it was given, once
/// per written event or once for a conflict, so a differently shaped answer is a bug in it, not
/// a state of the database: such a case is `unreachable!`.
fn outcomes(batch: &[Pending], rows: Vec<AppendRow>) -> (Vec<Outcome>, bool) {
    // The request of the event at statement index n (1-based) is owner[n - 1].
    let owner: Vec<usize> = batch
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::repeat_n(i, p.events.len()))
        .collect();
    let mut conflicts: Vec<Option<u64>> = vec![None; batch.len()];
    // Per request: (position, sequence) of its written events, and the time.
    let mut written: Vec<WrittenEvents> = batch.iter().map(|_| (Vec::new(), None)).collect();
    let mut alone = false;
    for (idx, version, position, sequence, timestamp, was_alone) in rows {
        alone |= was_alone == Some(true);
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
    let outcomes = conflicts
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
        .collect();
    (outcomes, alone)
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
            (-1, 0, Some(xid + 2), Some(5), Some(now), Some(true)),
            (1, 7, None, None, None, None),
            (-1, 0, Some(xid + 1), Some(4), Some(now), Some(true)),
        ];
        let (out, alone) = outcomes(&batch, rows);
        assert!(alone);
        let first = (xid + 1) as u64;
        assert!(
            matches!(&out[0], Outcome::Written { before: 3, positions, timestamp }
                if positions == &[first, first + 1] && *timestamp == now)
        );
        assert!(matches!(out[1], Outcome::Conflict { actual: 7 }));
    }

    #[test]
    #[should_panic(expected = "answers every request")]
    fn a_request_without_an_answer_is_a_bug() {
        outcomes(&[pending("a", ExpectedVersion::Any, 1)], Vec::new());
    }
}
