//! The design's kernel and projection contract on PostgreSQL, in a schema of its own.
//!
//! Needs a server: `ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test cargo test --workspace
//! --all-features`. Without `ES_PG_URL` the test fails and says so; it never passes without
//! having talked to a server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod contract;

use contract::{Error, kernel_contract};

/// The server's URL, or a failure that names `ES_PG_URL`.
fn pg_url() -> Result<String, Error> {
    match std::env::var("ES_PG_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => Err(
            "ES_PG_URL is not set: this test needs a PostgreSQL server, e.g. \
                  ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test"
                .into(),
        ),
    }
}

#[tokio::test]
async fn design_on_postgres_store() -> Result<(), Error> {
    let url = pg_url()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to ES_PG_URL={url}: {e}"))?;
    let schema = format!(
        "es_design_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let store = es_stores::PostgresStore::builder(pool.clone())
        .schema(&schema)
        .build()
        .await?;
    let result = kernel_contract(store).await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await?;
    result
}
