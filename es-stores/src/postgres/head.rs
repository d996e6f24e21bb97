//! Keeps `subscribe()`'s watch at the highest readable position: woken by this node's commits
//! and, through LISTEN/NOTIFY, by every other node's; polls while the readable head lags behind
//! what is written (a transaction still in flight holds it back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

use super::sql::{self, Queries};

/// How often the head is re-read while readers lag behind written events.
const LAG_POLL: Duration = Duration::from_millis(10);

/// The refresher task's inputs.
pub(crate) struct Refresher {
    pub(crate) pool: PgPool,
    /// The statements; the refresher runs [`HEADS`](sql::HEADS).
    pub(crate) sql: Arc<Queries>,
    /// The NOTIFY channel of this schema.
    pub(crate) channel: String,
    pub(crate) wake: Arc<Notify>,
    pub(crate) notify_others: Arc<AtomicBool>,
    pub(crate) head: Arc<watch::Sender<u64>>,
    /// The fallback poll interval when nothing wakes the task.
    pub(crate) idle_poll: Duration,
}

impl Refresher {
    /// Runs until aborted.
    pub(crate) async fn run(self) {
        let mut lagging = false;
        loop {
            let wait = if lagging { LAG_POLL } else { self.idle_poll };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            if self.notify_others.swap(false, Ordering::AcqRel) {
                // After the commit, never inside the append: a NOTIFY in a transaction takes a
                // database-wide lock at commit that would serialize all appends.
                if let Err(e) = sqlx::query(sql::NOTIFY)
                    .bind(&self.channel)
                    .execute(&self.pool)
                    .await
                {
                    debug!(error = %e, "cannot notify other nodes; they will poll");
                }
            }
            match sqlx::query_as::<_, (i64, i64)>(&self.sql.heads)
                .fetch_one(&self.pool)
                .await
            {
                Ok((readable, written)) => {
                    lagging = written > readable;
                    let readable = u64::try_from(readable).unwrap_or(0);
                    self.head.send_if_modified(|h| {
                        if readable > *h {
                            *h = readable;
                            true
                        } else {
                            false
                        }
                    });
                }
                Err(e) => {
                    debug!(error = %e, "cannot read the head position; will retry");
                    lagging = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Listens on `channel` with its own connection (not one of the pool's) and wakes the refresher
/// on every notification, and after every reconnection (notifications may have been lost).
pub(crate) async fn listen(pool: PgPool, channel: String, wake: Arc<Notify>) {
    // A private one-connection pool with the same options: the listener reconnects through it.
    let options = (*pool.connect_options()).clone();
    drop(pool);
    let own = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
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
                Ok(Some(_)) => {
                    while listener.next_buffered().is_some() {}
                    wake.notify_one();
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
