//! A pooled connection that a busy task keeps between requests, and gives back to the pool
//! once its queue has stayed empty for a moment.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::mpsc;

/// How long a task keeps its connection after its queue empties. sqlx checks a connection with
/// a round trip of its own when the pool lends it and again when it gets it back, so a task
/// that gave its connection back at every empty moment would pay two extra round trips per
/// batch under a steady load (measured: a lane's queue empties between most batches of W1,
/// while the clients' next commands are on their way).
pub(super) const KEEP_IDLE: Duration = Duration::from_millis(20);

/// The next request of `rx` (`None`: every sender is gone). While a connection is `held` it is
/// kept for up to [`KEEP_IDLE`] of waiting, then given back to the pool before waiting on.
pub(super) async fn next_request<T>(
    rx: &mut mpsc::Receiver<T>,
    held: &mut Option<PoolConnection<Postgres>>,
) -> Option<T> {
    if held.is_some() {
        if let Ok(next) = tokio::time::timeout(KEEP_IDLE, rx.recv()).await {
            return next;
        }
        drop(held.take());
    }
    rx.recv().await
}
