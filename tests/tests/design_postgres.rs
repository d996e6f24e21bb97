//! The design's kernel and projection contract on PostgreSQL, in a schema of its own.
//!
//! Needs a server: `ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test cargo test --workspace
//! --all-features`. Without `ES_PG_URL` the test fails and says so; it never passes without
//! having talked to a server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod contract;

use contract::{
    Error, envelope_contract, evolution_contract, kernel_contract, projections_contract,
};
use es_core::prelude::*;
use es_examples::bank::{BankAccount, Deposit};

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

/// A pool on the server and a schema name no other test uses.
async fn pool_and_schema(tag: &str) -> Result<(sqlx::PgPool, String), Error> {
    let url = pg_url()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to ES_PG_URL={url}: {e}"))?;
    let schema = format!(
        "es_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    Ok((pool, schema))
}

async fn drop_schema(pool: &sqlx::PgPool, schema: &str) -> Result<(), Error> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;
    Ok(())
}

async fn store_on(pool: &sqlx::PgPool, schema: &str) -> Result<es_stores::PostgresStore, Error> {
    Ok(es_stores::PostgresStore::builder(pool.clone())
        .schema(schema)
        .build()
        .await?)
}

#[tokio::test]
async fn design_on_postgres_store() -> Result<(), Error> {
    let (pool, schema) = pool_and_schema("design").await?;
    let store = store_on(&pool, &schema).await?;
    let result = kernel_contract(store).await;
    drop_schema(&pool, &schema).await?;
    result
}

#[tokio::test]
async fn evolution_on_postgres_store() -> Result<(), Error> {
    let (pool, schema) = pool_and_schema("evolution").await?;
    let store = store_on(&pool, &schema).await?;
    let result = evolution_contract(store).await;
    drop_schema(&pool, &schema).await?;
    result
}

#[tokio::test]
async fn envelope_and_idempotency_survive_a_restart_on_postgres() -> Result<(), Error> {
    let (pool, schema) = pool_and_schema("envelope").await?;
    // Each "open" builds a new store handle on the schema, as a restarted process would.
    let (on_pool, in_schema) = (&pool, schema.as_str());
    let open = move || store_on(on_pool, in_schema);
    let result = envelope_contract(open).await;
    drop_schema(&pool, &schema).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_on_another_node_gets_the_first_answer() -> Result<(), Error> {
    let (pool, schema) = pool_and_schema("two_nodes").await?;
    let result = async {
        // Two nodes: two kernels, each with its own store handle and pool, on one database.
        let (pool2, _) = pool_and_schema("unused").await?;
        let node1 = Kernel::builder()
            .store(store_on(&pool, &schema).await?)
            .register::<BankAccount>()
            .build()?;
        let node2 = Kernel::builder()
            .store(store_on(&pool2, &schema).await?)
            .register::<BankAccount>()
            .build()?;
        // node2 has the aggregate live, at version 1, with its window built.
        node2
            .dispatch_with::<BankAccount>(
                "acc-1",
                Deposit { amount: 1 },
                DispatchOptions::default().command_id("warm-up"),
            )
            .await?;
        let pay = DispatchOptions::default()
            .command_id("pay-42")
            .tag("retry-me");
        let first = node1
            .dispatch_with::<BankAccount>("acc-1", Deposit { amount: 10 }, pay.clone())
            .await?;
        // The client timed out and retries on the other node.
        let retry = node2
            .dispatch_with::<BankAccount>("acc-1", Deposit { amount: 10 }, pay)
            .await?;
        assert_eq!(retry, first, "the other node answers with the first answer");
        assert_eq!(node2.state::<BankAccount>("acc-1").await?.balance, 11);
        // Concurrent copies on both nodes commit once.
        let copy = DispatchOptions::default().command_id("copy-1");
        let (a, b) = tokio::join!(
            node1.dispatch_with::<BankAccount>("acc-1", Deposit { amount: 3 }, copy.clone()),
            node2.dispatch_with::<BankAccount>("acc-1", Deposit { amount: 3 }, copy),
        );
        assert_eq!(a?, b?);
        assert_eq!(node1.state::<BankAccount>("acc-1").await?.balance, 14);
        node1.shutdown().await;
        node2.shutdown().await;
        Ok::<(), Error>(())
    }
    .await;
    drop_schema(&pool, &schema).await?;
    result
}

#[tokio::test]
async fn projections_continued_on_postgres() -> Result<(), Error> {
    let (pool, schema) = pool_and_schema("proj_cont").await?;
    let (on_pool, in_schema) = (&pool, schema.as_str());
    let open = move || store_on(on_pool, in_schema);
    let result = projections_contract(open).await;
    drop_schema(&pool, &schema).await?;
    result
}
