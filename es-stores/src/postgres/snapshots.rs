//! Snapshots and checkpoints: the [`SnapshotStore`] and [`CheckpointStore`] implementations.

use async_trait::async_trait;
use es_core::store::{Checkpoint, CheckpointStore, Snapshot, SnapshotStore, StoreError, StreamId};

use super::PostgresStore;
use super::error::{self, Op};
use super::read::{self, limit_i64, to_i64};
use super::store::check_text;

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
        read::latest_snapshot(&self.inner.pool, &self.inner.sql, stream).await
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

#[async_trait]
impl CheckpointStore for PostgresStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        check_text("projection name", name)?;
        read::checkpoint(&self.inner.pool, &self.inner.sql, name).await
    }

    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        check_text("projection name", name)?;
        // One statement: the position and the state are saved together or not at all.
        sqlx::query(&self.inner.sql.save_checkpoint)
            .bind(name)
            .bind(to_i64(position))
            .bind(state)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Write, "saving a checkpoint"))?;
        Ok(())
    }
}
