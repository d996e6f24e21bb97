//! The read path: events by stream and from the global log, versions and heads, snapshots and
//! checkpoints, and the decoding of their rows. Callers have validated their input.

use chrono::{DateTime, Utc};
use es_core::store::{
    Checkpoint, EventFilter, FilteredPage, Metadata, RecordedEvent, StoreError, StreamId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::error::{self, Op};
use super::sql::Queries;

/// A count or position as a PostgreSQL `bigint` (values past `i64::MAX` saturate: no stored
/// value is that large).
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count as a PostgreSQL `bigint` (saturating, like [`to_i64`]).
pub(super) fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A stored `bigint` that must not be negative; a negative one is [`StoreError::Corrupt`].
pub(super) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

/// A timestamp as PostgreSQL keeps it: truncated to microseconds (a `timestamptz`), and the
/// nanoseconds below them (0..1,000, in an `integer` column of their own).
pub(super) fn split_timestamp(timestamp: DateTime<Utc>) -> (DateTime<Utc>, i32) {
    let rest = timestamp.timestamp_subsec_nanos() % 1_000;
    // `rest` is below 1,000: both conversions are exact.
    let micros = timestamp - chrono::Duration::nanoseconds(i64::from(rest));
    (micros, rest as i32)
}

/// The timestamp [`split_timestamp`] split.
pub(super) fn join_timestamp(micros: DateTime<Utc>, rest: i32) -> DateTime<Utc> {
    micros + chrono::Duration::nanoseconds(i64::from(rest))
}

/// Up to `limit` readable events of the global log from position `from`.
pub(super) async fn all(
    pool: &PgPool,
    sql: &Queries,
    from: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&sql.read_all)
        .bind(to_i64(from))
        .bind(limit_i64(limit))
        .fetch_all(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading the global log"))?;
    rows.iter().map(decode_event).collect()
}

/// Up to `limit` readable events of the global log from position `from`, examined on their
/// position, stream type and event type alone; only those `filter` matches are read whole
/// (payload included), by a second query.
pub(super) async fn all_matching(
    pool: &PgPool,
    sql: &Queries,
    from: u64,
    limit: usize,
    filter: EventFilter,
) -> Result<FilteredPage, StoreError> {
    let mut page = FilteredPage::default();
    if limit == 0 {
        return Ok(page);
    }
    let heads = sqlx::query(&sql.read_all_heads)
        .bind(to_i64(from))
        .bind(limit_i64(limit))
        .fetch_all(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading the global log"))?;
    let read = |e| error::map(e, Op::Read, "decoding an event");
    let mut wanted: Vec<i64> = Vec::new();
    for row in &heads {
        let position: i64 = row.try_get(0).map_err(read)?;
        let aggregate_type: &str = row.try_get(1).map_err(read)?;
        let event_type: &str = row.try_get(2).map_err(read)?;
        page.scanned += 1;
        page.scanned_to = to_u64(position, "position")?;
        if filter.matches_head(aggregate_type, event_type) {
            wanted.push(position);
        }
    }
    if wanted.is_empty() {
        return Ok(page);
    }
    let rows = sqlx::query(&sql.read_at)
        .bind(&wanted)
        .fetch_all(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading the global log"))?;
    for row in &rows {
        let event = decode_event(row)?;
        if filter.envelope.is_none_or(|f| f(&event)) {
            page.events.push(event);
        }
    }
    Ok(page)
}

/// The version of `stream` (0 when it has no events).
pub(super) async fn stream_version(
    pool: &PgPool,
    sql: &Queries,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    let version: i64 = sqlx::query_scalar(&sql.stream_version)
        .bind(&stream.aggregate_type)
        .bind(&stream.aggregate_id)
        .fetch_one(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading a stream version"))?;
    to_u64(version, "stream version")
}

/// The highest readable position (0 when none).
pub(super) async fn head(pool: &PgPool, sql: &Queries) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar(&sql.head)
        .fetch_one(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading the head position"))?;
    to_u64(head, "position")
}

/// The checkpoint of the projection `name`, if any.
pub(super) async fn checkpoint(
    pool: &PgPool,
    sql: &Queries,
    name: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let row = sqlx::query(&sql.load_checkpoint)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "loading a checkpoint"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let read = |e| error::map(e, Op::Read, "decoding a checkpoint");
    Ok(Some(Checkpoint {
        position: to_u64(row.try_get(0).map_err(read)?, "checkpoint position")?,
        state: row.try_get(1).map_err(read)?,
    }))
}

/// An event from a row of the columns `event_columns!()` lists.
fn decode_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    decode_event_at(row, 0)
}

/// An event from the columns `event_columns!()` lists, starting at column `base` of `row`.
pub(super) fn decode_event_at(row: &PgRow, base: usize) -> Result<RecordedEvent, StoreError> {
    let read = |e| error::map(e, Op::Read, "decoding an event");
    let metadata: String = row.try_get(base + 7).map_err(read)?;
    let metadata: Metadata = serde_json::from_str(&metadata)
        .map_err(|e| StoreError::Corrupt(format!("event metadata is not a JSON object: {e}")))?;
    let event_version: i64 = row.try_get(base + 5).map_err(read)?;
    let recorded_at: DateTime<Utc> = row.try_get(base + 6).map_err(read)?;
    let recorded_at_ns: i32 = row.try_get(base + 9).map_err(read)?;
    let id = |column: usize| -> Result<Option<std::sync::Arc<str>>, StoreError> {
        Ok(row
            .try_get::<Option<&str>, _>(base + column)
            .map_err(read)?
            .map(std::sync::Arc::from))
    };
    Ok(RecordedEvent {
        position: to_u64(row.try_get(base).map_err(read)?, "position")?,
        stream: StreamId::new(
            row.try_get::<String, _>(base + 1).map_err(read)?,
            row.try_get::<String, _>(base + 2).map_err(read)?,
        ),
        sequence: to_u64(row.try_get(base + 3).map_err(read)?, "sequence")?,
        event_type: row.try_get(base + 4).map_err(read)?,
        event_version: u32::try_from(event_version).map_err(|_| {
            StoreError::Corrupt(format!("event version {event_version} out of range"))
        })?,
        timestamp: join_timestamp(recorded_at, recorded_at_ns),
        envelope: es_core::store::Envelope {
            command_id: id(10)?,
            correlation_id: id(11)?,
            causation_id: id(12)?,
            tags: row.try_get(base + 13).map_err(read)?,
            metadata,
        },
        payload: row.try_get(base + 8).map_err(read)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_and_join_exactly() {
        for nanos in [0, 1, 999, 1_000, 123_456_789, 999_999_999] {
            for secs in [-1_000_000_000_i64, -1, 0, 1_700_000_000] {
                let Some(t) = DateTime::from_timestamp(secs, nanos) else {
                    panic!("valid timestamp {secs} {nanos}");
                };
                let (micros, rest) = split_timestamp(t);
                assert_eq!(micros.timestamp_subsec_nanos() % 1_000, 0, "{t}");
                assert!((0..1_000).contains(&rest), "{t}");
                assert_eq!(join_timestamp(micros, rest), t);
            }
        }
    }
}
