//! Subject keys and erasure records: the [`KeyStore`] of [`PostgresStore`], in the tables
//! `subject_keys` and `erasures` of the store's schema (apart from the events).
//!
//! `forget` deletes the key and inserts the erasure record in one transaction: both or
//! neither. Every node sharing the schema sees the key gone once that commits; a kernel's key
//! cache may still hold it for its time to live (see `es_core::erasure`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use es_core::store::{ErasureRecord, KeyStore, StoreError, SubjectKey, validate_subject};

use super::PostgresStore;
use super::error::{self, Op};
use super::sql::fill;

const SELECT_KEY: &str = "SELECT key_id, key FROM {schema}.subject_keys WHERE subject = $1";
const INSERT_KEY: &str = "INSERT INTO {schema}.subject_keys (subject, key_id, key) \
                          VALUES ($1, $2, $3) ON CONFLICT (subject) DO NOTHING";
const SELECT_KEYS: &str =
    "SELECT subject, key_id, key FROM {schema}.subject_keys WHERE subject = ANY($1)";
const ALL_KEYS: &str = "SELECT subject, key_id, key FROM {schema}.subject_keys ORDER BY subject";
const DELETE_KEY: &str = "DELETE FROM {schema}.subject_keys WHERE subject = $1";
const INSERT_ERASURE: &str = "INSERT INTO {schema}.erasures \
                              (subject, erased_by, erased_at, key_deleted) VALUES ($1, $2, $3, $4)";
const ALL_ERASURES: &str = "SELECT subject, erased_by, erased_at, key_deleted \
                            FROM {schema}.erasures ORDER BY id";

/// A key as read from a row.
fn key_of(id: String, bytes: &[u8]) -> Result<SubjectKey, StoreError> {
    let bytes = <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("subject key {id} is not 32 bytes")))?;
    Ok(SubjectKey::from_parts(id, bytes))
}

impl PostgresStore {
    fn keys_sql(&self, statement: &str) -> String {
        fill(statement, &self.inner.schema)
    }

    async fn insert_key(&self, subject: &str, key: &SubjectKey) -> Result<(), StoreError> {
        sqlx::query(&self.keys_sql(INSERT_KEY))
            .bind(subject)
            .bind(key.id())
            .bind(key.bytes().as_slice())
            .execute(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Write, "storing a subject key"))?;
        Ok(())
    }

    async fn select_key(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(&self.keys_sql(SELECT_KEY))
            .bind(subject)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Read, "reading a subject key"))?;
        row.map(|(id, bytes)| key_of(id, &bytes)).transpose()
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        validate_subject(subject)?;
        if let Some(key) = self.select_key(subject).await? {
            return Ok(key);
        }
        // Two nodes may race to create it: the first insert wins, both read the winner.
        self.insert_key(subject, &SubjectKey::generate()).await?;
        self.select_key(subject).await?.ok_or_else(|| {
            StoreError::Indeterminate(format!(
                "the key of subject {subject} was deleted while it was being created"
            ))
        })
    }

    async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, SubjectKey>, StoreError> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(&self.keys_sql(SELECT_KEYS))
            .bind(subjects)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Read, "reading subject keys"))?;
        rows.into_iter()
            .map(|(subject, id, bytes)| Ok((subject, key_of(id, &bytes)?)))
            .collect()
    }

    async fn forget(&self, subject: &str, erased_by: &str) -> Result<ErasureRecord, StoreError> {
        validate_subject(subject)?;
        let what = "forgetting a subject";
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .map_err(|e| error::map(e, Op::Acquire, what))?;
        let deleted = sqlx::query(&self.keys_sql(DELETE_KEY))
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, Op::Write, what))?
            .rows_affected();
        let record = ErasureRecord {
            subject: subject.to_owned(),
            erased_by: erased_by.to_owned(),
            // PostgreSQL keeps microseconds: the record returned is the one read back.
            erased_at: Utc::now().trunc_subsecs(6),
            key_deleted: deleted > 0,
        };
        sqlx::query(&self.keys_sql(INSERT_ERASURE))
            .bind(&record.subject)
            .bind(&record.erased_by)
            .bind(record.erased_at)
            .bind(record.key_deleted)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, Op::Write, what))?;
        tx.commit()
            .await
            .map_err(|e| error::map(e, Op::Write, what))?;
        Ok(record)
    }

    async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>, bool)> =
            sqlx::query_as(&self.keys_sql(ALL_ERASURES))
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| error::map(e, Op::Read, "reading erasure records"))?;
        Ok(rows
            .into_iter()
            .map(
                |(subject, erased_by, erased_at, key_deleted)| ErasureRecord {
                    subject,
                    erased_by,
                    erased_at,
                    key_deleted,
                },
            )
            .collect())
    }

    async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(&self.keys_sql(ALL_KEYS))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| error::map(e, Op::Read, "reading subject keys"))?;
        rows.into_iter()
            .map(|(subject, id, bytes)| Ok((subject, key_of(id, &bytes)?)))
            .collect()
    }

    async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError> {
        validate_subject(subject)?;
        self.insert_key(subject, &key).await
    }
}
