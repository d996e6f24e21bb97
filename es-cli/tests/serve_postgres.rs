//! `es serve`'s live follow on PostgreSQL: events committed by another node (a second store on
//! the same schema) reach the server-sent event stream. Needs the `postgres` feature and a
//! server in `ES_PG_URL` (without one this test fails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve_support;

use sqlx::Connection;

#[tokio::test]
async fn live_follow_sends_other_nodes_events_on_postgres() {
    let base = match std::env::var("ES_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ES_PG_URL is not set: this test needs a PostgreSQL server, e.g. \
             ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test (run `cargo test` without the \
             `postgres` feature to leave it out)"
        ),
    };
    let schema = format!("es_cli_serve_follow_{}", std::process::id());
    let drop_schema = || async {
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .unwrap();
    };
    drop_schema().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    serve_support::follow_while_writing(&format!("{base}{sep}schema={schema}"), true).await;
    drop_schema().await;
}
