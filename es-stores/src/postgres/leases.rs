//! Runner leases: one runner per name among the processes sharing a database, held with a
//! PostgreSQL session advisory lock.

use std::time::Duration;

use es_core::store::{Lease, RunnerLease, StoreError};
use sqlx::Connection;

use super::PostgresStore;
use super::error::{self, Op};
use super::sql;

/// One runner per name among the processes sharing this database: a session advisory lock
/// (keyed by schema and name) held by a connection taken out of the pool for as long as the
/// lease lasts. A process that dies closes the connection, which releases the lock; the
/// connection is checked every second, and a failed check ends the lease.
pub(super) async fn try_lease(store: &PostgresStore, name: &str) -> Result<Lease, StoreError> {
    let key = lock_key(&store.inner.schema, name);
    let mut pooled = store
        .inner
        .pool
        .acquire()
        .await
        .map_err(|e| error::map(e, Op::Read, "taking a connection for a runner lease"))?;
    let held: bool = sqlx::query_scalar(sql::TRY_LEASE)
        .bind(key)
        .fetch_one(&mut *pooled)
        .await
        .map_err(|e| error::map(e, Op::Read, "taking a runner lease"))?;
    if !held {
        // It holds no lock: back to the pool (a standby asks twice a second).
        return Ok(Lease::HeldElsewhere);
    }
    // The lock lives as long as this session: the connection leaves the pool with the lease.
    let mut conn = pooled.detach();
    let (lost, lost_rx) = tokio::sync::watch::channel(false);
    let (release, mut released) = tokio::sync::oneshot::channel::<()>();
    // Sent (or dropped, when the task ends another way) once the lock is given up.
    let (done, confirmed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut released => {
                    let _ = sqlx::query(sql::RELEASE_LEASE)
                        .bind(key)
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                    let _ = done.send(());
                    return;
                }
                _ = tick.tick() => {
                    if sqlx::query(sql::PING).execute(&mut conn).await.is_err() {
                        lost.send_replace(true);
                        return;
                    }
                }
            }
        }
    });
    Ok(Lease::Acquired(
        RunnerLease::new(lost_rx, release).confirmed_by(confirmed),
    ))
}

/// Which of the runner leases `names` a session of this database holds, in order (one
/// statement on `pg_locks`; nothing is taken).
pub(super) async fn leases_held(
    store: &PostgresStore,
    names: &[String],
) -> Result<Vec<bool>, StoreError> {
    let keys: Vec<i64> = names
        .iter()
        .map(|name| lock_key(&store.inner.schema, name))
        .collect();
    let held: Vec<i64> = sqlx::query_scalar(sql::LEASES_HELD)
        .bind(&keys)
        .fetch_all(&store.inner.pool)
        .await
        .map_err(|e| error::map(e, Op::Read, "reading which runner leases are held"))?;
    let held: std::collections::HashSet<i64> = held.into_iter().collect();
    Ok(keys.iter().map(|key| held.contains(key)).collect())
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
