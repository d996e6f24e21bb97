//! Snapshots: the [`SnapshotStore`] implementation.

use async_trait::async_trait;

use es_core::store::{Snapshot, SnapshotStore, StoreError, StreamId};

use super::PostgresStore;
use super::error::{self, Op};
use super::read::{self, limit_i64, to_i64};

#[async_trait]
impl SnapshotStore for PostgresStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        snapshot.stream.validate()?;
        let (micros, rest) = read::split_timestamp(snapshot.timestamp);
        sqlx::query(&self.inner.sql.save_snapshot)
            .bind(&snapshot.stream.aggregate_type)
            .bind(&snapshot.stream.aggregate_id)
            .bind(to_i64(snapshot.version))
            .bind(&snapshot.state)
            .bind(micros)
            .bind(rest)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Write, "saving a snapshot"))?;
        Ok(())
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        stream.validate()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = super::readers::Request::Snapshot {
            stream: stream.clone(),
            reply,
        };
        super::readers::ask(&self.inner.readers, request, answer).await
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        stream.validate()?;
        sqlx::query(&self.inner.sql.prune_snapshots)
            .bind(&stream.aggregate_type)
            .bind(&stream.aggregate_id)
            .bind(limit_i64(keep_last))
            .execute(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Write, "pruning snapshots"))?;
        Ok(())
    }
}
