//! The store's own schema migrations: versioned, idempotent, serialized by an advisory lock.

use es_core::store::StoreError;
use sqlx::{Executor, PgPool};
use tracing::info;

use super::error::{self, Op};
use super::sql;

/// One schema migration. `{schema}` in `sql` is replaced by the quoted schema name.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Append new ones; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, snapshots and checkpoints",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "event envelope: ids, tags, timestamp nanoseconds",
        sql: include_str!("migrations/0002_envelope.sql"),
    },
    Migration {
        version: 3,
        name: "truncations: the events removed from each stream",
        sql: include_str!("migrations/0003_truncations.sql"),
    },
    Migration {
        version: 4,
        name: "subject keys and erasure records",
        sql: include_str!("migrations/0004_keys.sql"),
    },
];

/// The schema version this build of the store creates and expects.
pub(crate) const LATEST: i32 = 4;

/// The first key of the advisory lock taken while migrating (`"es"` in ASCII); the second key is
/// the hash of the schema name, so migrators of different schemas do not wait for each other.
const LOCK_CLASS: i32 = 0x6573;

/// Whether `name` is a plain lower-case SQL identifier we can use as a schema name.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// Creates `schema` and brings it to [`LATEST`], in one transaction under an advisory lock:
/// concurrent migrators (several nodes starting together) wait for each other, and a migrator
/// that finds the work done does nothing.
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let what = "migrating the schema";
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| error::map(e, Op::Acquire, what))?;
    let write = |e| error::map(e, Op::Write, what);
    sqlx::query(sql::MIGRATION_LOCK)
        .bind(LOCK_CLASS)
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map_err(write)?;
    (&mut *tx)
        .execute(sqlx::raw_sql(&sql::fill(sql::CREATE_MIGRATION_LOG, schema)))
        .await
        .map_err(write)?;
    let current: i32 = sqlx::query_scalar(&sql::fill(sql::SCHEMA_VERSION, schema))
        .fetch_one(&mut *tx)
        .await
        .map_err(write)?;
    if current > LATEST {
        return Err(StoreError::Incompatible(format!(
            "schema {schema} is at version {current}, newer than this store's {LATEST}: \
             upgrade the application"
        )));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        info!(
            schema,
            version = migration.version,
            name = migration.name,
            "applying migration"
        );
        (&mut *tx)
            .execute(sqlx::raw_sql(&sql::fill(migration.sql, schema)))
            .await
            .map_err(write)?;
        sqlx::query(&sql::fill(sql::RECORD_MIGRATION, schema))
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await
            .map_err(write)?;
    }
    tx.commit().await.map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("es"));
        assert!(valid_schema_name("es_test_42"));
        assert!(valid_schema_name("_x"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1es"));
        assert!(!valid_schema_name("Es"));
        assert!(!valid_schema_name("es\"; drop"));
        assert!(!valid_schema_name(&"a".repeat(64)));
    }

    #[test]
    fn migrations_are_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<i32> = (1..=LATEST).collect();
        assert_eq!(versions, expected);
    }
}
