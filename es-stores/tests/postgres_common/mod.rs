//! Shared helpers for the PostgreSQL tests: the server URL from `ES_PG_URL` (a test without a
//! reachable server fails, naming the variable), and a fresh schema per test, dropped when its
//! guard goes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use es_core::store::{NewEvent, StreamId};
use es_stores::PostgresStore;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// An example value of `ES_PG_URL`, for the failure messages.
const EXAMPLE_URL: &str = "postgresql://postgres@127.0.0.1:5432/test";

/// The server URL from `ES_PG_URL`, once a connection to it succeeded.
///
/// # Panics
///
/// When `ES_PG_URL` is unset or empty, or the server cannot be reached within 10 seconds: a
/// PostgreSQL test either talks to a real server or fails, never passes having asserted nothing.
pub async fn pg_url() -> String {
    let url = match std::env::var("ES_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ES_PG_URL is not set: these tests need a PostgreSQL server, e.g. \
             ES_PG_URL={EXAMPLE_URL} (run `cargo test` without the `postgres` feature to leave \
             them out)"
        ),
    };
    use sqlx::Connection;
    let connect = sqlx::PgConnection::connect(&url);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            url
        }
        // The URL is not repeated: it may hold a password.
        Ok(Err(e)) => panic!(
            "ES_PG_URL is set but PostgreSQL cannot be reached there: {e} (e.g. \
             ES_PG_URL={EXAMPLE_URL})"
        ),
        Err(_) => panic!(
            "ES_PG_URL is set but PostgreSQL did not answer there within 10 s (e.g. \
             ES_PG_URL={EXAMPLE_URL})"
        ),
    }
}

/// A schema name no other test uses.
pub fn unique_schema(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "es_test_{prefix}_{:x}_{:x}_{n}",
        std::process::id(),
        nanos % 0xffff_ffff
    )
}

/// A pool of up to `max` connections.
pub async fn pool(url: &str, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect a pool to ES_PG_URL: {e}"))
}

/// Tests that hold a transaction open take this lock exclusively; every other test shares it.
///
/// An open writing transaction anywhere on the server holds back what `read_all` returns (by
/// design, see the gap problem), so it must not overlap tests that append and read right away.
static OPEN_TRANSACTIONS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// What a test holds of [`OPEN_TRANSACTIONS`].
pub enum Isolation {
    /// Runs alongside other ordinary tests.
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    /// Runs alone: it holds transactions open.
    Exclusive(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// Shares the server with other ordinary tests.
pub async fn shared() -> Isolation {
    Isolation::Shared(OPEN_TRANSACTIONS.read().await)
}

/// Runs alone among this binary's tests.
pub async fn exclusive() -> Isolation {
    Isolation::Exclusive(OPEN_TRANSACTIONS.write().await)
}

/// Drops its schema (and everything in it) when dropped, and holds the test's [`Isolation`].
pub struct SchemaGuard {
    pub url: String,
    pub schema: String,
    pub isolation: Option<Isolation>,
}

impl SchemaGuard {
    /// A guard for a fresh schema named after `prefix` (see [`unique_schema`]) on server `url`,
    /// holding no isolation: for a test that builds its stores itself.
    pub fn fresh(url: &str, prefix: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: unique_schema(prefix),
            isolation: None,
        }
    }

    /// Another node on this guard's schema: a store of its own, on a pool of up to `max`
    /// connections (as a second process would have).
    pub async fn another_node(&self, max: u32) -> PostgresStore {
        PostgresStore::builder(pool(&self.url, max).await)
            .schema(self.schema.clone())
            .build()
            .await
            .expect("cannot build the other node's store")
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // Drop may run inside a runtime: do the async cleanup on a thread of its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = done.join();
    }
}

/// A fresh store in its own schema, on a pool of up to `max` connections.
pub async fn store_with(test: &str, max: u32) -> (PostgresStore, SchemaGuard) {
    let url = pg_url().await;
    let isolation = shared().await;
    build(url, test, max, isolation).await
}

async fn build(
    url: String,
    test: &str,
    max: u32,
    isolation: Isolation,
) -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema(&test.chars().take(12).collect::<String>());
    let pool = pool(&url, max).await;
    let store = PostgresStore::builder(pool)
        .schema(schema.clone())
        .build()
        .await
        .expect("cannot build the store");
    (
        store,
        SchemaGuard {
            url,
            schema,
            isolation: Some(isolation),
        },
    )
}

/// A fresh store in its own schema.
pub async fn store(test: &str) -> (PostgresStore, SchemaGuard) {
    store_with(test, 8).await
}

/// A fresh store in its own schema, for a test that runs alone (it holds transactions open).
pub async fn store_alone(test: &str) -> (PostgresStore, SchemaGuard) {
    let url = pg_url().await;
    let isolation = exclusive().await;
    build(url, test, 8, isolation).await
}

/// Event `n` of a test: type `Numbered`, payload `{"n":n}`.
pub fn ev(n: u64) -> NewEvent {
    NewEvent::new("Numbered", format!("{{\"n\":{n}}}").into_bytes())
}

/// The test stream `id` (of type `test`).
pub fn s(id: &str) -> StreamId {
    StreamId::new("test", id)
}
