//! Subscriptions: LISTEN/NOTIFY wakes a subscriber for another node's commit.

use std::time::Duration;

use es_core::store::{EventStore, ExpectedVersion};
use es_stores::PostgresStore;

use crate::postgres_common::{ev, pool, s, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_wakes_for_another_nodes_commit() {
    let (a, guard) = store("notify").await;
    // B polls only once a minute: a prompt wake-up must come from NOTIFY.
    let b = PostgresStore::builder(pool(&guard.url, 4).await)
        .schema(guard.schema.clone())
        .poll_interval(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let mut rx = b.subscribe();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = a
        .append(&s("n"), ExpectedVersion::Any, vec![ev(1)])
        .await
        .unwrap();
    let last = done.last_position().unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|h| *h >= last))
        .await
        .expect("node B was not woken by node A's commit")
        .unwrap();

    // Kill B's listener connection: it reconnects, and B still wakes.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query ILIKE 'LISTEN %' AND query LIKE $1",
    )
    .bind(format!("%es.{}%", guard.schema))
    .fetch_all(a.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no listener connection found");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut reached = false;
    for i in 0..20 {
        let done = a
            .append(&s("n"), ExpectedVersion::Any, vec![ev(i)])
            .await
            .unwrap();
        let last = done.last_position().unwrap();
        if tokio::time::timeout(Duration::from_millis(500), rx.wait_for(|h| *h >= last))
            .await
            .is_ok()
        {
            reached = true;
            break;
        }
    }
    assert!(
        reached,
        "node B never woke again after its listener was killed"
    );
}
