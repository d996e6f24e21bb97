//! What a failure means for the caller: an exhausted pool, a statement timeout, a connection
//! killed mid-append, an unreachable server.

use std::time::Duration;

use es_core::store::{CheckpointStore, EventStore, ExpectedVersion, StoreError};
use es_stores::PostgresStore;
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

use crate::postgres_common::{SchemaGuard, ev, s, store, store_alone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable() {
    let (store, guard) = store("poolfull").await;
    let tiny = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&guard.url)
        .await
        .unwrap();
    let tiny_store = PostgresStore::builder(tiny.clone())
        .schema(guard.schema.clone())
        .listen(false)
        .build()
        .await
        .unwrap();
    let _held = (tiny.acquire().await.unwrap(), tiny.acquire().await.unwrap());
    let append = tiny_store
        .append(&s("p"), ExpectedVersion::Any, vec![ev(1)])
        .await;
    assert!(
        matches!(append, Err(StoreError::Unavailable(_))),
        "{append:?}"
    );
    assert!(append.unwrap_err().is_transient());
    let read = tiny_store.read_all(0, 10).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let cp = CheckpointStore::save(&tiny_store, "p", 1, None).await;
    assert!(matches!(cp, Err(StoreError::Unavailable(_))), "{cp:?}");
    assert_eq!(store.stream_version(&s("p")).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_unavailable_and_writes_nothing() {
    let (store, guard) = store_alone("stmttimeout").await;
    let options: sqlx::postgres::PgConnectOptions = guard.url.parse().unwrap();
    let timed = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("statement_timeout", "300ms")]))
        .await
        .unwrap();
    let timed_store = PostgresStore::builder(timed)
        .schema(guard.schema.clone())
        .listen(false)
        .build()
        .await
        .unwrap();
    // Another session blocks all writes to the events table.
    let mut locker = lock_events(&guard).await;
    let append = timed_store
        .append(&s("t"), ExpectedVersion::NoStream, vec![ev(1)])
        .await;
    assert!(
        matches!(append, Err(StoreError::Unavailable(_))),
        "{append:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(store.stream_version(&s("t")).await.unwrap(), 0);
    // And it was safe to retry.
    timed_store
        .append(&s("t"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_during_append_is_indeterminate() {
    let (store, guard) = store_alone("killed").await;
    let mut locker = lock_events(&guard).await;
    let append = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(&s("k"), ExpectedVersion::NoStream, vec![ev(1)])
                .await
        })
    };
    // Wait until the append is blocked on the lock, then kill its connection.
    let mut killed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rows: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(format!("%INSERT INTO \"{}\".events%", guard.schema))
        .fetch_all(&mut locker)
        .await
        .unwrap();
        if !rows.is_empty() {
            killed = true;
            break;
        }
    }
    assert!(killed, "the append never blocked");
    let result = append.await.unwrap();
    assert!(
        matches!(result, Err(StoreError::Indeterminate(_))),
        "a write cut off mid-flight must be indeterminate, got {result:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    // Here it did not commit; the store recovers with fresh connections.
    assert_eq!(store.stream_version(&s("k")).await.unwrap(), 0);
    store
        .append(&s("k"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable() {
    // Needs no server: nothing listens on port 1.
    let result = PostgresStore::connect("postgresql://postgres@127.0.0.1:1/test").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

/// A connection of its own holding the schema's events table locked, in a transaction the
/// caller ends with `ROLLBACK`: appends wait for it.
async fn lock_events(guard: &SchemaGuard) -> sqlx::PgConnection {
    let mut locker = sqlx::PgConnection::connect(&guard.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE \"{}\".events IN EXCLUSIVE MODE",
        guard.schema
    ))
    .execute(&mut locker)
    .await
    .unwrap();
    locker
}
