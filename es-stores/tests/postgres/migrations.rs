//! Migrating a schema: idempotent, and safe when several stores migrate at once.

use es_core::store::StoreError;
use es_stores::PostgresStore;

use crate::postgres_common::{SchemaGuard, pg_url, pool, shared, unique_schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_safe_concurrently() {
    let url = pg_url().await;
    let schema = unique_schema("migrate");
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
        isolation: Some(shared().await),
    };
    let pool = pool(&url, 12).await;
    // Eight nodes start at once on a fresh schema.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            PostgresStore::builder(pool).schema(schema).build().await
        }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("concurrent migration failed"));
    }
    // Again, on a migrated schema: nothing to do.
    stores[0].migrate().await.unwrap();
    let rows: Vec<(i32,)> = sqlx::query_as(&format!(
        "SELECT version FROM \"{schema}\".es_migrations ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![(1,), (2,), (3,), (4,)]);
    // A store that does not migrate accepts a current schema...
    PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .migrate(false)
        .build()
        .await
        .unwrap();
    // ...refuses a missing one and a newer one.
    let missing = PostgresStore::builder(pool.clone())
        .schema(unique_schema("missing"))
        .migrate(false)
        .build()
        .await;
    assert!(
        matches!(missing, Err(StoreError::Incompatible(_))),
        "{missing:?}"
    );
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".es_migrations (version, name) VALUES (99, 'future')"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let newer = PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .build()
        .await;
    assert!(
        matches!(newer, Err(StoreError::Incompatible(_))),
        "{newer:?}"
    );
    let bad = PostgresStore::builder(pool)
        .schema("Bad\"Name")
        .build()
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");
}
