//! [`ErasureLayer`]: seals PII fields on their way into a store and opens them on the way out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::cache::KeyCache;
use super::cipher;
use super::format::{FormatError, PiiValue, may_hold_pii, pii_values, rewrite};
use crate::store::{
    ErasureRecord, KeyStore, RecordedEvent, StoreError, SubjectKey, validate_subject,
};

/// How long the kernel keeps a subject key it read, by default.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// The header of a snapshot state written at a snapshot version other than 1 (kept as it is).
const VERSIONED_STATE: &[u8] = b"\0esv";
const VERSIONED_HEADER_LEN: usize = 8;

/// Seals and opens the PII fields of payloads and snapshot states with the keys of a
/// [`KeyStore`], caching keys (see the module docs of [`erasure`](super) for what the cache
/// may hold and for how long).
///
/// The kernel keeps one and puts it between itself and its stores; tools that read a store
/// directly (the CLI's `events`, `verify`) use one to show what a program would read.
///
/// ```
/// use es_core::erasure::ErasureLayer;
/// use es_core::store::KeyStore;
/// use es_core::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let layer = ErasureLayer::new(store.key_store());
/// let open = br#"{"email":{"$pii":{"v":1,"s":"c-1","f":"Registered.email","p":"ada@example.com","r":""}}}"#;
/// let (sealed, plain) = layer.seal(open).await?.expect("it holds a PII field");
/// assert_eq!(plain, br#"{"email":"ada@example.com"}"#);
/// assert!(!String::from_utf8_lossy(&sealed).contains("ada@example.com"));
/// assert_eq!(layer.open(&sealed).await?.as_deref(), Some(&plain[..]));
/// layer.forget("c-1", "dpo").await?;
/// assert_eq!(layer.open(&sealed).await?.as_deref(), Some(&br#"{"email":""}"#[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ErasureLayer {
    keys: Option<Arc<dyn KeyStore>>,
    cache: KeyCache,
}

impl ErasureLayer {
    /// A layer over `keys` (none: PII fields cannot be written, and sealed ones read as their
    /// replacement), caching keys for [`DEFAULT_KEY_CACHE_TTL`].
    pub fn new(keys: Option<Arc<dyn KeyStore>>) -> Self {
        Self::with_cache_ttl(keys, DEFAULT_KEY_CACHE_TTL)
    }

    /// A layer caching keys for `ttl` (zero: no cache across reads).
    pub fn with_cache_ttl(keys: Option<Arc<dyn KeyStore>>, ttl: Duration) -> Self {
        Self {
            keys,
            cache: KeyCache::new(ttl),
        }
    }

    /// The key store, if the layer has one.
    pub fn key_store(&self) -> Option<&Arc<dyn KeyStore>> {
        self.keys.as_ref()
    }

    /// Deletes `subject`'s key and records the erasure (see [`KeyStore::forget`]); from then
    /// on this layer opens none of the subject's values.
    pub async fn forget(
        &self,
        subject: &str,
        erased_by: &str,
    ) -> Result<ErasureRecord, StoreError> {
        validate_subject(subject)?;
        let keys = self.keys.as_ref().ok_or_else(no_key_store)?;
        self.cache.forgotten(subject);
        let done = keys.forget(subject, erased_by).await;
        self.cache.forgotten(subject);
        done
    }

    /// Whether [`ErasureLayer::seal`] may change `json` at all (it holds the PII marker): when
    /// it does not, `seal` answers `None` without looking further.
    pub(crate) fn may_seal(json: &[u8]) -> bool {
        may_hold_pii(split_header(json).1)
    }

    /// Seals the open PII fields of `json`: `None` when it holds none, else the sealed JSON
    /// (to store) and the plain JSON (what a reader with the keys reads back).
    pub async fn seal(&self, json: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        if !Self::may_seal(json) {
            return Ok(None);
        }
        let (header, body) = split_header(json);
        let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        let subjects: HashSet<String> = pii_values(&value)
            .into_iter()
            .filter_map(Result::ok)
            .filter(PiiValue::is_open)
            .map(|f| f.s)
            .collect();
        let mut keys = HashMap::with_capacity(subjects.len());
        for subject in subjects {
            let key = self.write_key(&subject).await?;
            keys.insert(subject, key);
        }
        let mut plain = value.clone();
        let mut any = false;
        rewrite(&mut plain, &mut |field: PiiValue| {
            any = true;
            Ok::<_, StoreError>(field.p.unwrap_or(field.r))
        })?;
        if !any {
            return Ok(None);
        }
        rewrite(&mut value, &mut |field: PiiValue| {
            if !field.is_open() {
                return Ok(field.to_json());
            }
            let key = keys.get(&field.s).ok_or_else(no_key_store)?;
            Ok::<_, StoreError>(cipher::seal(key, field).map_err(corrupt)?.to_json())
        })?;
        Ok(Some((
            with_header(header, &value)?,
            with_header(header, &plain)?,
        )))
    }

    /// `json` with every PII field replaced by its plaintext (its subject's key still exists)
    /// or its replacement (the subject was forgotten). `None` when it holds none.
    pub async fn open(&self, json: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut one = vec![json.to_vec()];
        let changed = self.open_all(&mut one).await?;
        Ok(changed
            .first()
            .copied()
            .unwrap_or(false)
            .then(|| one.remove(0)))
    }

    /// Opens the PII fields of every event's payload in place, looking keys up once per
    /// subject of the page.
    pub async fn open_events(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        if !events.iter().any(|e| may_hold_pii(&e.payload)) {
            return Ok(());
        }
        let mut payloads: Vec<Vec<u8>> = events
            .iter_mut()
            .map(|e| std::mem::take(&mut e.payload))
            .collect();
        let done = self.open_all(&mut payloads).await;
        for (event, payload) in events.iter_mut().zip(payloads) {
            event.payload = payload;
        }
        done.map(|_| ())
    }

    /// Opens every payload in place; tells which changed.
    async fn open_all(&self, payloads: &mut [Vec<u8>]) -> Result<Vec<bool>, StoreError> {
        let mut parsed: Vec<Option<Value>> = Vec::with_capacity(payloads.len());
        let mut subjects = HashSet::new();
        for payload in payloads.iter() {
            let (_, body) = split_header(payload);
            let value = may_hold_pii(body)
                .then(|| serde_json::from_slice::<Value>(body).ok())
                .flatten();
            if let Some(value) = &value {
                for field in pii_values(value) {
                    subjects.insert(field.map_err(format_error)?.s);
                }
            }
            parsed.push(value);
        }
        let keys = self.read_keys(subjects).await?;
        let mut changed = Vec::with_capacity(payloads.len());
        for (payload, value) in payloads.iter_mut().zip(parsed) {
            let Some(mut value) = value else {
                changed.push(false);
                continue;
            };
            let mut any = false;
            rewrite(&mut value, &mut |field: PiiValue| {
                any = true;
                open_field(keys.get(&field.s).and_then(Option::as_ref), field)
            })?;
            if any {
                let (header, _) = split_header(payload);
                *payload = with_header(header, &value)?;
            }
            changed.push(any);
        }
        Ok(changed)
    }

    /// The key to seal `subject`'s values with, created when it has none.
    async fn write_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        if let Some(Some(key)) = self.cache.get(subject) {
            return Ok(key);
        }
        let keys = self.keys.as_ref().ok_or_else(no_key_store)?;
        let epoch = self.cache.epoch();
        let key = keys.subject_key(subject).await?;
        self.cache.put(epoch, subject, Some(key.clone()));
        Ok(key)
    }

    /// The current keys of `subjects` (`None`: forgotten or never had one).
    async fn read_keys(
        &self,
        subjects: HashSet<String>,
    ) -> Result<HashMap<String, Option<SubjectKey>>, StoreError> {
        let mut found = HashMap::with_capacity(subjects.len());
        let mut missing = Vec::new();
        for subject in subjects {
            match self.cache.get(&subject) {
                Some(key) => {
                    found.insert(subject, key);
                }
                None => missing.push(subject),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let Some(keys) = &self.keys else {
            found.extend(missing.into_iter().map(|s| (s, None)));
            return Ok(found);
        };
        let epoch = self.cache.epoch();
        let mut got = keys.keys(&missing).await?;
        for subject in missing {
            let key = got.remove(&subject);
            self.cache.put(epoch, &subject, key.clone());
            found.insert(subject, key);
        }
        Ok(found)
    }
}

/// One field's value for a reader: plaintext when `key` opens it, else the replacement.
fn open_field(key: Option<&SubjectKey>, field: PiiValue) -> Result<Value, StoreError> {
    if let Some(plain) = field.p {
        return Ok(plain);
    }
    let Some(key) = key else {
        return Ok(field.r);
    };
    match cipher::open(key, &field).map_err(corrupt)? {
        Some(plain) => Ok(plain),
        None => Ok(field.r),
    }
}

/// A snapshot state's version header (empty for JSON) and its JSON.
fn split_header(bytes: &[u8]) -> (&[u8], &[u8]) {
    if bytes.starts_with(VERSIONED_STATE) && bytes.len() >= VERSIONED_HEADER_LEN {
        bytes.split_at(VERSIONED_HEADER_LEN)
    } else {
        (&[], bytes)
    }
}

/// `value` serialized after `header`.
fn with_header(header: &[u8], value: &Value) -> Result<Vec<u8>, StoreError> {
    let mut bytes = header.to_vec();
    serde_json::to_writer(&mut bytes, value)
        .map_err(|e| StoreError::InvalidInput(format!("cannot serialize a payload: {e}")))?;
    Ok(bytes)
}

/// The error of writing a PII field without a key store.
fn no_key_store() -> StoreError {
    StoreError::InvalidInput(
        "this value has #[pii] fields but the kernel has no key store: use a store that keeps \
         keys (every es-core and es-stores backend does) or give one with \
         `Kernel::builder().key_store(..)`"
            .into(),
    )
}

/// A PII field that cannot be opened with its own key.
fn corrupt(e: cipher::OpenError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A PII field this code cannot read.
fn format_error(e: FormatError) -> StoreError {
    match e {
        FormatError::NewerVersion(_) => StoreError::Incompatible(e.to_string()),
        FormatError::Malformed(_) => StoreError::Corrupt(e.to_string()),
    }
}

impl From<FormatError> for StoreError {
    fn from(e: FormatError) -> Self {
        format_error(e)
    }
}
