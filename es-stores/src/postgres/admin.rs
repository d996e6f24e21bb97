//! What an operator tool reads beyond the store traits: the names of the saved checkpoints
//! and the stream heads.

use es_core::store::{StoreError, StreamId};

use super::PostgresStore;
use super::sql::{self, CHECKPOINT_NAMES, STREAM_HEADS, STREAM_HEADS_AFTER};

impl PostgresStore {
    /// The names of the projections that have a saved checkpoint, sorted.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the query fails.
    pub(crate) async fn checkpoint_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(&sql::fill(CHECKPOINT_NAMES, self.schema()))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::Unavailable(format!("listing checkpoints: {e}")))
    }

    /// Up to `limit` streams and their versions, in the database's text order of
    /// `(stream type, stream id)`, after `after` (from the first when `None`): one aggregate
    /// over the stream index.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the query fails.
    pub(crate) async fn stream_heads(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        let (statement, cursor) = match after {
            Some(a) => (
                STREAM_HEADS_AFTER,
                (a.aggregate_type.as_str(), a.aggregate_id.as_str()),
            ),
            None => (STREAM_HEADS, ("", "")),
        };
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&sql::fill(statement, self.schema()))
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading the stream heads: {e}")))?;
        Ok(rows
            .into_iter()
            .map(|(t, id, v)| (StreamId::new(t, id), u64::try_from(v).unwrap_or(0)))
            .collect())
    }
}
