//! The key store: one AES-256 key per subject, kept apart from the events, and the erasure
//! records written when a subject is forgotten.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// 32 random bytes from the operating system.
fn new_key_bytes() -> [u8; 32] {
    use aes_gcm::aead::{KeyInit, OsRng};
    aes_gcm::Aes256Gcm::generate_key(&mut OsRng).into()
}

impl fmt::Debug for dyn KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyStore")
    }
}

/// One subject's key: a random id and 32 random bytes. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey {
    id: String,
    bytes: [u8; 32],
}

impl SubjectKey {
    /// A fresh random key (from the operating system's randomness).
    pub fn generate() -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            bytes: new_key_bytes(),
        }
    }

    /// A key from its id and bytes (as a backend reads it back).
    pub fn from_parts(id: impl Into<String>, bytes: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            bytes,
        }
    }

    /// The key's id, stored beside every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key as stored by the file-based backends and carried by `--with-keys` copies:
    /// `{"v":1,"id":"...","key":"<base64>"}`.
    pub fn to_stored(&self) -> StoredKey {
        StoredKey {
            v: 1,
            id: self.id.clone(),
            key: STANDARD.encode(self.bytes),
        }
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A key in its stored (serializable) form; see [`SubjectKey::to_stored`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The format version (1).
    pub v: u32,
    /// The key id.
    pub id: String,
    /// The 32 key bytes, base64.
    pub key: String,
}

impl StoredKey {
    /// The key, or why these stored bytes are not one (a newer version, a bad length).
    pub fn to_key(&self) -> Result<SubjectKey, StoreError> {
        if self.v != 1 {
            return Err(StoreError::Incompatible(format!(
                "a subject key of format version {}: this code reads version 1 (written by \
                 newer code)",
                self.v
            )));
        }
        let bytes = STANDARD
            .decode(&self.key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("key {} is not 32 bytes", self.id)))?;
        Ok(SubjectKey::from_parts(self.id.clone(), bytes))
    }
}

/// The record of one erasure: which subject, when, and who asked. It holds no personal data
/// beyond the subject's id (use opaque ids as subjects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    /// The forgotten subject.
    pub subject: String,
    /// Who asked for the erasure (an operator, a service).
    pub erased_by: String,
    /// When the key was deleted.
    pub erased_at: DateTime<Utc>,
    /// Whether a key existed and was deleted (false: the subject had no encrypted data).
    pub key_deleted: bool,
}

/// Per-subject keys for crypto-shredding, kept apart from the events.
///
/// Every backend implements it and hands it out through
/// [`EventStore::key_store`](crate::store::EventStore::key_store). The contract:
///
/// - [`subject_key`](Self::subject_key) returns the subject's key, creating (and durably
///   storing) one when it has none; concurrent callers get the same key.
/// - [`forget`](Self::forget) deletes the key, then records the erasure. A crash in between
///   leaves the key deleted and no record, never a record with the key still there; backends
///   with transactions do both in one.
/// - After `forget`, [`keys`](Self::keys) no longer returns the old key, and `subject_key`
///   makes a new one with another id (values sealed before stay unreadable).
///
/// ```
/// use es_core::store::KeyStore;
/// use es_core::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), es_core::store::StoreError> {
/// let store = MemoryStore::new();
/// let key = store.subject_key("customer-7").await?;
/// assert_eq!(store.subject_key("customer-7").await?, key);
/// let record = store.forget("customer-7", "dpo@example.com").await?;
/// assert!(record.key_deleted);
/// assert!(store.keys(&["customer-7".to_owned()]).await?.is_empty());
/// assert_eq!(store.erasures().await?, vec![record]);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The subject's key, created when it has none.
    async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError>;

    /// The keys of those `subjects` that have one (a forgotten or unknown subject is absent).
    async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, SubjectKey>, StoreError>;

    /// Deletes the subject's key, then records the erasure (see the trait's contract).
    async fn forget(&self, subject: &str, erased_by: &str) -> Result<ErasureRecord, StoreError>;

    /// Every erasure record, oldest first.
    async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError>;

    /// Every key, by subject (for a copy of the store made with its keys).
    async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError>;

    /// Stores `key` as the subject's key, unless the subject has one already (then it is left
    /// as it is). Used by copies made with their keys.
    async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError>;
}

macro_rules! forward_key_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: KeyStore + ?Sized> KeyStore for $ty {
            async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
                (**self).subject_key(subject).await
            }
            async fn keys(
                &self,
                subjects: &[String],
            ) -> Result<HashMap<String, SubjectKey>, StoreError> {
                (**self).keys(subjects).await
            }
            async fn forget(
                &self,
                subject: &str,
                erased_by: &str,
            ) -> Result<ErasureRecord, StoreError> {
                (**self).forget(subject, erased_by).await
            }
            async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
                (**self).erasures().await
            }
            async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError> {
                (**self).export_keys().await
            }
            async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError> {
                (**self).import_key(subject, key).await
            }
        }
    };
}

forward_key_store!(Arc<T>);
forward_key_store!(Box<T>);

/// Checks a subject id: not empty, at most 256 bytes, no control characters.
pub fn validate_subject(subject: &str) -> Result<(), StoreError> {
    if subject.is_empty() {
        return Err(StoreError::InvalidInput(
            "a PII subject cannot be empty".into(),
        ));
    }
    if subject.len() > 256 {
        return Err(StoreError::InvalidInput(format!(
            "a PII subject is at most 256 bytes, this one has {}",
            subject.len()
        )));
    }
    if subject.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(
            "a PII subject cannot hold control characters".into(),
        ));
    }
    Ok(())
}

/// An in-memory [`KeyStore`]: the one of [`MemoryStore`](crate::MemoryStore), and a building
/// block for tests. Clones share the keys.
#[derive(Debug, Clone, Default)]
pub struct MemoryKeyStore {
    inner: Arc<Mutex<MemoryKeys>>,
}

/// The keys and records of a [`MemoryKeyStore`].
#[derive(Debug, Default)]
struct MemoryKeys {
    keys: HashMap<String, SubjectKey>,
    erasures: Vec<ErasureRecord>,
}

impl MemoryKeyStore {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        validate_subject(subject)?;
        let mut inner = self.inner.lock();
        Ok(inner
            .keys
            .entry(subject.to_owned())
            .or_insert_with(SubjectKey::generate)
            .clone())
    }

    async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, SubjectKey>, StoreError> {
        let inner = self.inner.lock();
        Ok(subjects
            .iter()
            .filter_map(|s| inner.keys.get(s).map(|k| (s.clone(), k.clone())))
            .collect())
    }

    async fn forget(&self, subject: &str, erased_by: &str) -> Result<ErasureRecord, StoreError> {
        validate_subject(subject)?;
        let mut inner = self.inner.lock();
        let record = ErasureRecord {
            subject: subject.to_owned(),
            erased_by: erased_by.to_owned(),
            erased_at: Utc::now(),
            key_deleted: inner.keys.remove(subject).is_some(),
        };
        inner.erasures.push(record.clone());
        Ok(record)
    }

    async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        Ok(self.inner.lock().erasures.clone())
    }

    async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        let mut keys: Vec<_> = self
            .inner
            .lock()
            .keys
            .iter()
            .map(|(s, k)| (s.clone(), k.clone()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }

    async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError> {
        validate_subject(subject)?;
        self.inner
            .lock()
            .keys
            .entry(subject.to_owned())
            .or_insert(key);
        Ok(())
    }
}
