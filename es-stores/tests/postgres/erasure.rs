//! No plaintext of a `#[pii]` field in any row of the store's tables (events, snapshots,
//! checkpoints, keys, erasures, read as text), before or after `forget`.

use std::sync::Arc;

use es_core::store::Store;
use proptest::prelude::*;

use crate::erasure_common::{leaked, people, run};
use crate::postgres_common::store;

/// Every row of every table of `schema`, as text.
async fn rows_as_text(url: &str, schema: &str) -> Vec<(String, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.iter().any(|(t,)| t == "events"), "{tables:?}");
    let mut out = Vec::new();
    for (table,) in tables {
        let rows: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT t::text FROM \"{schema}\".\"{table}\" t"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        out.extend(rows.into_iter().map(|(row,)| (table.clone(), row)));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn no_plaintext_in_any_row(people in people()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (pg, guard) = store("erasure").await;
            run(Arc::new(pg.clone()) as Arc<dyn Store>, &people).await;
            let rows = rows_as_text(&guard.url, &guard.schema).await;
            assert!(rows.iter().any(|(t, _)| t == "snapshots"), "snapshots were written");
            assert!(rows.iter().any(|(t, _)| t == "checkpoints"), "a checkpoint was written");
            for (table, row) in &rows {
                if let Some(name) = leaked(row.as_bytes(), &people) {
                    panic!("a row of {table} holds the plaintext {name:?}: {row}");
                }
            }
            drop(pg);
            drop(guard);
        });
    }
}
