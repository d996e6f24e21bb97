//! Keeps `subscribe()`'s watch at the highest readable position: woken by this node's commits
//! and, through LISTEN/NOTIFY, by every other node's; polls while the readable head lags behind
//! what is written (a transaction still in flight holds it back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

use super::sql::Queries;

/// How often the head is re-read while readers lag behind written events.
const LAG_POLL: Duration = Duration::from_millis(10);

/// The refresher task's inputs.
pub(crate) struct Refresher {
    pub(crate) pool: PgPool,
    /// The statements; the refresher runs [`HEADS`](super::sql::HEADS) and [`NOTIFY_HEADS`](super::sql::NOTIFY_HEADS).
    pub(crate) sql: Arc<Queries>,
    /// The NOTIFY channel of this schema.
    pub(crate) channel: String,
    /// This node's id, the payload of its notifications (see [`node_id`]).
    pub(crate) node: String,
    pub(crate) wake: Arc<Notify>,
    pub(crate) notify_others: Arc<AtomicBool>,
    pub(crate) head: Arc<watch::Sender<u64>>,
    /// The fallback poll interval when nothing wakes the task.
    pub(crate) idle_poll: Duration,
}

impl Refresher {
    /// Runs until aborted. The refresher reads the head after every commit (the answers to
    /// appends wait for it), so it keeps a connection of its own rather than taking one from
    /// the pool each time (sqlx checks a connection when it lends it and when it gets it back:
    /// two more round trips per refresh); a connection that failed is dropped and replaced.
    pub(crate) async fn run(self) {
        let own = private_pool(&self.pool);
        let mut conn: Option<PoolConnection<Postgres>> = None;
        let mut lagging = false;
        loop {
            let wait = if lagging { LAG_POLL } else { self.idle_poll };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            // After a commit, other nodes are woken by the same statement that reads the head.
            let notify = self.notify_others.swap(false, Ordering::AcqRel);
            let heads = if notify {
                sqlx::query_as::<_, (i64, i64)>(&self.sql.notify_heads)
                    .bind(&self.channel)
                    .bind(&self.node)
            } else {
                sqlx::query_as::<_, (i64, i64)>(&self.sql.heads)
            };
            let outcome = match conn.as_mut() {
                Some(conn) => heads.fetch_one(&mut **conn).await,
                None => match own.acquire().await {
                    Ok(fresh) => heads.fetch_one(&mut **conn.insert(fresh)).await,
                    Err(e) => Err(e),
                },
            };
            match outcome {
                Ok((readable, written)) => {
                    lagging = written > readable;
                    raise(&self.head, u64::try_from(readable).unwrap_or(0));
                }
                Err(e) => {
                    debug!(error = %e, "cannot read the head position; will retry");
                    conn = None;
                    if notify {
                        // Other nodes are told with the next refresh (or poll meanwhile).
                        self.notify_others.store(true, Ordering::Release);
                    }
                    lagging = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Moves `head` up to `to` (subscribers wake only when it moved); it never goes down.
pub(crate) fn raise(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|h| {
        let higher = to > *h;
        if higher {
            *h = to;
        }
        higher
    });
}

/// A private one-connection pool with `pool`'s connect options, for a task that keeps its own
/// connection (and reconnects through it) without taking one of the store's pool. Its
/// statements run again and again: generic plans (`plan_cache_mode`), planned once.
fn private_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .options([("plan_cache_mode", "force_generic_plan")]),
        )
}

/// An id for this node's notifications: random per store, so that its own listener can tell
/// them from other nodes' (older nodes send an empty payload, which is never an id).
pub(crate) fn node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Listens on `channel` with its own connection (not one of the pool's) and wakes the refresher
/// on every notification from another node (`node` is this one's: its own commits woke the
/// refresher already), and after every reconnection (notifications may have been lost).
pub(crate) async fn listen(pool: PgPool, channel: String, node: String, wake: Arc<Notify>) {
    // The listener reconnects through a private pool.
    let own = private_pool(&pool);
    drop(pool);
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&own).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot connect the notification listener; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        listener.ignore_pool_close_event(true);
        if let Err(e) = listener.listen(&channel).await {
            warn!(error = %e, "cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        wake.notify_one();
        backoff = Duration::from_millis(100);
        loop {
            match listener.try_recv().await {
                Ok(Some(first)) => {
                    let mut others = first.payload() != node;
                    while let Some(next) = listener.next_buffered() {
                        others |= next.payload() != node;
                    }
                    if others {
                        wake.notify_one();
                    }
                }
                Ok(None) => {
                    debug!("notification listener reconnected");
                    wake.notify_one();
                }
                Err(e) => {
                    warn!(error = %e, "notification listener failed; reconnecting");
                    wake.notify_one();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
            }
        }
    }
}
