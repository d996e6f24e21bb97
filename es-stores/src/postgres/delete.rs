//! Removing events (`EventStore::truncate_stream`) and the removals recorded: one statement
//! deletes the rows and records the removal, so both happen or neither does.

use chrono::{DateTime, Utc};
use es_core::store::lifecycle::Truncation;
use es_core::store::{StoreError, StreamId};
use sqlx::Row;

use super::PostgresStore;
use super::error::{self, Op};
use super::read::to_i64;
use super::sql::fill;

/// Deletes the stream's events below `$3` unless `$3` is above its version (its last event is
/// always kept), and records the removal; answers the stream's version and how many rows went.
const TRUNCATE: &str = "WITH head AS (
        SELECT COALESCE(MAX(sequence), 0) AS version FROM {schema}.events
        WHERE stream_type = $1 AND stream_id = $2
    ), gone AS (
        DELETE FROM {schema}.events
        WHERE stream_type = $1 AND stream_id = $2 AND sequence < $3
          AND $3 <= (SELECT version FROM head)
        RETURNING 1
    ), recorded AS (
        INSERT INTO {schema}.truncations AS t (stream_type, stream_id, before_sequence)
        SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM gone)
        ON CONFLICT (stream_type, stream_id) DO UPDATE
        SET before_sequence = GREATEST(t.before_sequence, EXCLUDED.before_sequence),
            truncated_at = now()
    )
    SELECT (SELECT version FROM head), (SELECT count(*) FROM gone)";

/// Every recorded removal.
const TRUNCATIONS: &str = "SELECT stream_type, stream_id, before_sequence, truncated_at \
    FROM {schema}.truncations ORDER BY stream_type, stream_id";

impl PostgresStore {
    /// See `EventStore::truncate_stream`.
    pub(super) async fn truncate(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        stream.validate()?;
        let row = sqlx::query(&fill(TRUNCATE, &self.inner.schema))
            .bind(&stream.aggregate_type)
            .bind(&stream.aggregate_id)
            .bind(to_i64(before))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Write, "removing events"))?;
        let version: i64 = row
            .try_get(0)
            .map_err(|e| error::map(e, Op::Read, "removing events"))?;
        let removed: i64 = row
            .try_get(1)
            .map_err(|e| error::map(e, Op::Read, "removing events"))?;
        if to_i64(before) > version {
            return Err(StoreError::InvalidInput(format!(
                "cannot remove the events of {stream} before sequence {before}: its version is \
                 {version}, and its last event is always kept"
            )));
        }
        Ok(u64::try_from(removed).unwrap_or(0))
    }

    /// See `EventStore::truncations`.
    pub(super) async fn truncation_records(&self) -> Result<Vec<Truncation>, StoreError> {
        let rows = sqlx::query(&fill(TRUNCATIONS, &self.inner.schema))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Read, "listing truncations"))?;
        rows.iter()
            .map(|row| {
                let stream_type: String = row.try_get(0)?;
                let stream_id: String = row.try_get(1)?;
                let before: i64 = row.try_get(2)?;
                let at: DateTime<Utc> = row.try_get(3)?;
                Ok(Truncation {
                    stream: StreamId::new(stream_type, stream_id),
                    before: u64::try_from(before).unwrap_or(0),
                    at,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| error::map(e, Op::Read, "listing truncations"))
    }
}
