//! Checkpoints: the [`CheckpointStore`] implementation (its runner leases are in
//! [`leases`](super::leases)).

use async_trait::async_trait;
use es_core::store::{Checkpoint, CheckpointStore, Lease, StoreError};

use super::PostgresStore;
use super::error::{self, Op};
use super::leases;
use super::read::{self, to_i64};
use super::store::check_text;

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

    /// One runner per name among the processes sharing this database: a session advisory
    /// lock held by a connection of its own (see `leases.rs`).
    async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
        check_text("runner name", name)?;
        leases::try_lease(self, name).await
    }

    /// Read from `pg_locks`, in one statement.
    async fn leases_held(&self, names: &[String]) -> Result<Option<Vec<bool>>, StoreError> {
        for name in names {
            check_text("runner name", name)?;
        }
        leases::leases_held(self, names).await.map(Some)
    }
}
