//! Batched reads by stream: the reads that rehydrate an aggregate (its latest snapshot, then its
//! events) queue up, and a few reader tasks each take whatever has queued and answer it with
//! one statement per kind, as the lanes do for appends.
//!
//! A kernel under load rehydrates many aggregates at once (each one's first command); one
//! statement per read would cost the server a round trip, a parse-bind-execute and a wake-up
//! per read, and the pool two more round trips (it checks a connection when it lends it and
//! when it gets it back). A reader keeps its connection while requests keep coming.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::store::{RecordedEvent, Snapshot, StoreError, StreamId};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::error::{self, Op};
use super::read::{decode_event_at, join_timestamp, limit_i64, to_i64, to_u64};
use super::sql::fill;

/// The most requests one statement answers.
const MAX_REQUESTS: usize = 256;

/// The most event rows the stream reads of one statement may ask for, summed over their limits
/// (a single request may ask for more: it then goes alone).
const MAX_ROWS: usize = 1 << 16;

/// Each request's events (`$1` stream types, `$2` stream ids, `$3` first sequences, `$4`
/// limits), preceded by the request's 1-based index; the event columns are those of the other
/// event reads (`READ_ALL`), in the same order, and `read::decode_event_at` decodes them.
const READ_STREAMS: &str = "SELECT r.n, e.position, e.stream_type, e.stream_id, e.sequence, \
     e.event_type, e.event_version, e.recorded_at, e.metadata::text, e.payload, \
     e.recorded_at_ns, e.command_id, e.correlation_id, e.causation_id, e.tags \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) \
         WITH ORDINALITY AS r(stream_type, stream_id, from_sequence, lim, n) \
     CROSS JOIN LATERAL (SELECT * FROM {schema}.events x \
         WHERE x.stream_type = r.stream_type AND x.stream_id = r.stream_id \
           AND x.sequence >= r.from_sequence ORDER BY x.sequence LIMIT r.lim) e \
     ORDER BY r.n, e.sequence";

/// Each request's latest snapshot (`$1` stream types, `$2` stream ids), preceded by the
/// request's 1-based index; requests without a snapshot have no row.
const LATEST_SNAPSHOTS: &str = "SELECT r.n, s.version, s.state, s.taken_at, s.taken_at_ns \
     FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS r(stream_type, stream_id, n) \
     CROSS JOIN LATERAL (SELECT * FROM {schema}.snapshots x \
         WHERE x.stream_type = r.stream_type AND x.stream_id = r.stream_id \
         ORDER BY x.version DESC LIMIT 1) s";

/// The readers' own pool, beside the store's: a connection per reader at most, opened with the
/// store's pool's connect options (and its acquire timeout) plus `plan_cache_mode =
/// force_generic_plan`. The two statements run for every batch, and PostgreSQL otherwise plans
/// them again at each execution (it keeps choosing a custom plan); the generic plan is the
/// same index lookup per request. Measured under W1 on PostgreSQL: a tenth of the server's CPU.
/// A pool of their own, because a session setting must not reach connections the application
/// shares with the store.
fn reader_pool(pool: &PgPool, readers: usize) -> PgPool {
    PgPoolOptions::new()
        .max_connections(u32::try_from(readers).unwrap_or(u32::MAX))
        .min_connections(0)
        .idle_timeout(Some(Duration::from_secs(60)))
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .options([("plan_cache_mode", "force_generic_plan")]),
        )
}

/// One queued read.
pub(super) enum Request {
    /// Up to `limit` (at least 1) events of `stream` from sequence `from`.
    Stream {
        stream: StreamId,
        from: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    },
    /// The latest snapshot of `stream`.
    Snapshot {
        stream: StreamId,
        reply: oneshot::Sender<Result<Option<Snapshot>, StoreError>>,
    },
}

/// The statements, with the schema filled in.
struct Statements {
    streams: String,
    snapshots: String,
}

/// Starts `readers` reader tasks on `pool` for the tables of `schema`; they end once every
/// sender of the returned queue is gone and the queue is drained.
pub(super) fn start(pool: &PgPool, schema: &str, readers: usize) -> mpsc::Sender<Request> {
    let (tx, rx) = mpsc::channel(4096);
    let queue = Arc::new(Mutex::new(rx));
    let statements = Arc::new(Statements {
        streams: fill(READ_STREAMS, schema),
        snapshots: fill(LATEST_SNAPSHOTS, schema),
    });
    let readers = readers.max(1);
    let own = reader_pool(pool, readers);
    for _ in 0..readers {
        tokio::spawn(run(own.clone(), statements.clone(), queue.clone()));
    }
    tx
}

/// One reader: takes what has queued (waiting for one request when nothing has), answers it,
/// and gives its connection back to the pool once the queue has stayed empty for a moment
/// (see `held`).
async fn run(pool: PgPool, sql: Arc<Statements>, queue: Arc<Mutex<mpsc::Receiver<Request>>>) {
    let mut held: Option<PoolConnection<Postgres>> = None;
    loop {
        let mut streams = Vec::new();
        let mut snapshots = Vec::new();
        let leftover = {
            let mut rx = queue.lock().await;
            let first = match rx.try_recv() {
                Ok(request) => request,
                Err(_) => match super::held::next_request(&mut rx, &mut held).await {
                    Some(request) => request,
                    None => return,
                },
            };
            let mut rows = 0;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Stream { limit, .. }
                        if !streams.is_empty() && rows + limit > MAX_ROWS =>
                    {
                        // Left for the next batch (of this reader or another).
                        next = Some(request);
                        break;
                    }
                    Request::Stream {
                        stream,
                        from,
                        limit,
                        reply,
                    } => {
                        rows += limit;
                        streams.push((stream, from, limit, reply));
                    }
                    Request::Snapshot { stream, reply } => snapshots.push((stream, reply)),
                }
                if streams.len() + snapshots.len() < MAX_REQUESTS {
                    next = rx.try_recv().ok();
                }
            }
            // At most one request is held back (it would have made the batch too large).
            next
        };
        if !snapshots.is_empty() {
            answer_snapshots(&pool, &sql, &mut held, snapshots).await;
        }
        if !streams.is_empty() {
            answer_streams(&pool, &sql, &mut held, streams).await;
        }
        if let Some(request) = leftover {
            run_alone(&pool, &sql, &mut held, request).await;
        }
    }
}

/// Answers one request on its own.
async fn run_alone(
    pool: &PgPool,
    sql: &Statements,
    held: &mut Option<PoolConnection<Postgres>>,
    request: Request,
) {
    match request {
        Request::Stream {
            stream,
            from,
            limit,
            reply,
        } => answer_streams(pool, sql, held, vec![(stream, from, limit, reply)]).await,
        Request::Snapshot { stream, reply } => {
            answer_snapshots(pool, sql, held, vec![(stream, reply)]).await;
        }
    }
}

/// A queued stream read.
type StreamRead = (
    StreamId,
    u64,
    usize,
    oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
);

/// A queued snapshot read.
type SnapshotRead = (
    StreamId,
    oneshot::Sender<Result<Option<Snapshot>, StoreError>>,
);

/// The `held` connection, taken from the pool first if there is none.
async fn connection<'c>(
    pool: &PgPool,
    held: &'c mut Option<PoolConnection<Postgres>>,
) -> Result<&'c mut PoolConnection<Postgres>, sqlx::Error> {
    match held {
        Some(conn) => Ok(conn),
        None => Ok(held.insert(pool.acquire().await?)),
    }
}

/// Runs the query `make` builds on the held connection; a connection that failed is given back
/// to the pool, which tests it. A connection kept from an earlier batch was not checked by the
/// pool since, so when the server ended it meanwhile (an operator's `pg_terminate_backend`, a
/// restart) the read is made once more on a fresh one: reads change nothing.
async fn fetch<'q>(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    make: impl Fn() -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    what: &str,
) -> Result<Vec<PgRow>, StoreError> {
    let reused = held.is_some();
    match fetch_once(pool, held, make(), what).await {
        Err(_) if reused => fetch_once(pool, held, make(), what).await,
        done => done,
    }
}

/// One attempt of [`fetch`].
async fn fetch_once(
    pool: &PgPool,
    held: &mut Option<PoolConnection<Postgres>>,
    query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    what: &str,
) -> Result<Vec<PgRow>, StoreError> {
    let conn = connection(pool, held)
        .await
        .map_err(|e| error::map(e, Op::Acquire, what))?;
    match query.fetch_all(&mut **conn).await {
        Ok(rows) => Ok(rows),
        Err(e) => {
            // Given back for the pool to test: a connection the server ended fails with a
            // database error too.
            drop(held.take());
            Err(error::map(e, Op::Read, what))
        }
    }
}

/// The request index (0-based) in column 0 of `row`, checked against `count`.
fn request_index(row: &PgRow, count: usize) -> Result<usize, StoreError> {
    let n: i64 = row
        .try_get(0)
        .map_err(|e| error::map(e, Op::Read, "decoding a batched read"))?;
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .filter(|&i| i < count)
        .ok_or_else(|| StoreError::Corrupt(format!("a batched read answered request {n}")))
}

/// Reads the events of every request of `reads` with one statement and answers each.
async fn answer_streams(
    pool: &PgPool,
    sql: &Statements,
    held: &mut Option<PoolConnection<Postgres>>,
    reads: Vec<StreamRead>,
) {
    let (types, ids) = stream_columns(reads.iter().map(|r| &r.0));
    let froms: Vec<i64> = reads.iter().map(|r| to_i64(r.1)).collect();
    let limits: Vec<i64> = reads.iter().map(|r| limit_i64(r.2)).collect();
    let query = || {
        sqlx::query(&sql.streams)
            .bind(types.clone())
            .bind(ids.clone())
            .bind(froms.clone())
            .bind(limits.clone())
    };
    let decoded = match fetch(pool, held, query, "reading a stream").await {
        Ok(rows) => split_events(&rows, reads.len()),
        Err(e) => Err(e),
    };
    deliver(reads.into_iter().map(|r| r.3), decoded);
}

/// The stream types and ids of `streams`, as two array parameters.
fn stream_columns<'s>(streams: impl Iterator<Item = &'s StreamId>) -> (Vec<&'s str>, Vec<&'s str>) {
    streams
        .map(|s| (s.aggregate_type.as_str(), s.aggregate_id.as_str()))
        .unzip()
}

/// Answers each of `replies` with its part of `decoded`, or all of them with its error.
fn deliver<T>(
    replies: impl Iterator<Item = oneshot::Sender<Result<T, StoreError>>>,
    decoded: Result<Vec<T>, StoreError>,
) {
    match decoded {
        Ok(per_request) => {
            for (reply, answer) in replies.zip(per_request) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The events of each of `count` requests, from the rows of [`READ_STREAMS`].
fn split_events(rows: &[PgRow], count: usize) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
    let mut per_request: Vec<Vec<RecordedEvent>> = (0..count).map(|_| Vec::new()).collect();
    for row in rows {
        let i = request_index(row, count)?;
        per_request[i].push(decode_event_at(row, 1)?);
    }
    Ok(per_request)
}

/// Reads the latest snapshot of every request of `reads` with one statement and answers each.
async fn answer_snapshots(
    pool: &PgPool,
    sql: &Statements,
    held: &mut Option<PoolConnection<Postgres>>,
    reads: Vec<SnapshotRead>,
) {
    let (types, ids) = stream_columns(reads.iter().map(|r| &r.0));
    let query = || {
        sqlx::query(&sql.snapshots)
            .bind(types.clone())
            .bind(ids.clone())
    };
    let decoded = match fetch(pool, held, query, "loading a snapshot").await {
        Ok(rows) => split_snapshots(&rows, &reads),
        Err(e) => Err(e),
    };
    deliver(reads.into_iter().map(|r| r.1), decoded);
}

/// The latest snapshot of each request of `reads`, from the rows of [`LATEST_SNAPSHOTS`].
fn split_snapshots(
    rows: &[PgRow],
    reads: &[SnapshotRead],
) -> Result<Vec<Option<Snapshot>>, StoreError> {
    let mut per_request: Vec<Option<Snapshot>> = reads.iter().map(|_| None).collect();
    let decode = |e| error::map(e, Op::Read, "decoding a snapshot");
    for row in rows {
        let i = request_index(row, reads.len())?;
        let taken_at: DateTime<Utc> = row.try_get(3).map_err(decode)?;
        let rest: i32 = row.try_get(4).map_err(decode)?;
        per_request[i] = Some(Snapshot {
            stream: reads[i].0.clone(),
            version: to_u64(row.try_get(1).map_err(decode)?, "snapshot version")?,
            state: row.try_get(2).map_err(decode)?,
            timestamp: join_timestamp(taken_at, rest),
        });
    }
    Ok(per_request)
}

/// Sends `request` to the readers and waits for its answer.
pub(super) async fn ask<T>(
    queue: &mpsc::Sender<Request>,
    request: Request,
    answer: oneshot::Receiver<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    if queue.send(request).await.is_err() {
        return Err(StoreError::Closed);
    }
    answer.await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(
            "the reader stopped before answering".to_owned(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batched_read_returns_the_columns_of_the_other_event_reads_in_order() {
        let single = super::super::sql::READ_ALL;
        let columns = single
            .trim_start_matches("SELECT page.* FROM (SELECT ")
            .split(" FROM ")
            .next()
            .unwrap_or_default();
        let batched: Vec<String> = READ_STREAMS
            .trim_start_matches("SELECT r.n, ")
            .split(" FROM ")
            .next()
            .unwrap_or_default()
            .split(", ")
            .map(|c| c.trim().trim_start_matches("e.").to_owned())
            .collect();
        let single: Vec<&str> = columns.split(", ").map(str::trim).collect();
        assert_eq!(batched, single);
    }
}
