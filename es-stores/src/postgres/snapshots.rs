//! Snapshots and checkpoints: the [`SnapshotStore`] and [`CheckpointStore`] implementations.

use async_trait::async_trait;
use std::time::Duration;

use es_core::store::{
    Checkpoint, CheckpointStore, Lease, RunnerLease, Snapshot, SnapshotStore, StoreError, StreamId,
};
use sqlx::Connection;

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

    /// One runner per name among the processes sharing this database: a session advisory lock
    /// (keyed by schema and name) held by a connection taken out of the pool for as long as the
    /// lease lasts. A process that dies closes the connection, which releases the lock; the
    /// connection is checked every second, and a failed check ends the lease.
    async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
        check_text("runner name", name)?;
        let key = lock_key(&self.inner.schema, name);
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(|e| error::map(e, Op::Read, "taking a connection for a runner lease"))?
            .detach();
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| error::map(e, Op::Read, "taking a runner lease"))?;
        if !held {
            let _ = conn.close().await;
            return Ok(Lease::HeldElsewhere);
        }
        let (lost, lost_rx) = tokio::sync::watch::channel(false);
        let (release, mut released) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = &mut released => {
                        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                            .bind(key)
                            .execute(&mut conn)
                            .await;
                        let _ = conn.close().await;
                        return;
                    }
                    _ = tick.tick() => {
                        if sqlx::query("SELECT 1").execute(&mut conn).await.is_err() {
                            lost.send_replace(true);
                            return;
                        }
                    }
                }
            }
        });
        Ok(Lease::Acquired(RunnerLease::new(lost_rx, release)))
    }
}

/// The advisory lock key of runner `name` in `schema`: FNV-1a 64 of both, as PostgreSQL's
/// `bigint`.
fn lock_key(schema: &str, name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes().chain([0]).chain(name.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
