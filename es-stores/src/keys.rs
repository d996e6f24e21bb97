//! [`DirKeyStore`]: the subject keys of the file and LMDB stores, in a `keys/` directory of
//! the store's directory, apart from the events.
//!
//! ```text
//! <dir>/keys/<subject>.key       one key per subject: {"v":1,"subject":..,"id":..,"key":<base64>}
//! <dir>/keys/erasures.jsonl      one erasure record per line, appended and fsynced
//! ```
//!
//! A subject's file name is its bytes in lowercase hex, or (past 80 bytes) the hex of its first
//! 60 bytes, `~` and a 128-bit hash of the whole subject; the file names its subject, which is
//! checked on reading. `forget` deletes the key file and fsyncs the directory before it
//! appends the record, so a crash in between leaves the key gone and no record. Deleting a
//! file does not scrub the disk blocks that held it: on a file system that keeps old blocks,
//! the key may stay recoverable from the raw device until they are reused; put the store on
//! an encrypted volume where that matters.
//!
//! The store's directory lock makes one process the only user, so the keys are read once at
//! open and served from memory; writes (a new key, a forget) go to disk first, off the async
//! runtime's workers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use es_core::store::{
    ErasureRecord, KeyStore, StoreError, StoredKey, SubjectKey, validate_subject,
};
use parking_lot::Mutex;
use serde_json::Value;

/// The directory of keys under a store's directory.
pub(crate) const KEYS_DIR: &str = "keys";
/// The erasure records.
const ERASURES_FILE: &str = "erasures.jsonl";

/// Keys and erasure records in a directory; clones share them.
#[derive(Clone)]
pub struct DirKeyStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DirKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirKeyStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    /// The keys on disk, by subject; changed only after the disk was.
    keys: Mutex<HashMap<String, SubjectKey>>,
    /// Serializes the writers (creations, forgets, imports).
    write: tokio::sync::Mutex<()>,
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let context = format!("{what} {}", path.display());
    move |e| StoreError::io(context, e)
}

impl DirKeyStore {
    /// Opens (creating it) the `keys/` directory under `store_dir` and reads its keys.
    pub(crate) fn open(store_dir: &Path) -> Result<Self, StoreError> {
        let dir = store_dir.join(KEYS_DIR);
        match fs::create_dir(&dir) {
            Ok(()) => sync_dir(store_dir).map_err(io_error("syncing", store_dir))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(io_error("creating", &dir)(e)),
        }
        let mut keys = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(io_error("reading", &dir))? {
            let entry = entry.map_err(io_error("reading", &dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let bytes = fs::read(&path).map_err(io_error("reading", &path))?;
            let (subject, key) = parse_key_file(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            keys.insert(subject, key);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                keys: Mutex::new(keys),
                write: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Runs blocking file work off the runtime's workers.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner.dir))
            .await
            .map_err(|e| StoreError::Backend {
                backend: "keys",
                message: format!("a key store task failed: {e}"),
            })?
    }

    /// Writes `key` as `subject`'s key file (atomically, durably).
    async fn write_key(&self, subject: &str, key: &SubjectKey) -> Result<(), StoreError> {
        let contents = key_file(subject, key);
        let name = file_name(subject);
        self.blocking(move |dir| {
            replace_file(dir, &name, contents.as_bytes()).map_err(io_error("writing a key in", dir))
        })
        .await
    }
}

/// The contents of a key file.
fn key_file(subject: &str, key: &SubjectKey) -> String {
    let stored = key.to_stored();
    serde_json::json!({"v": stored.v, "subject": subject, "id": stored.id, "key": stored.key})
        .to_string()
}

/// A key file's subject and key.
fn parse_key_file(bytes: &[u8]) -> Result<(String, SubjectKey), StoreError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a key file is not JSON: {e}")))?;
    let subject = value["subject"]
        .as_str()
        .ok_or_else(|| StoreError::Corrupt("a key file without a subject".into()))?
        .to_owned();
    let stored: StoredKey = serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("a malformed key file: {e}")))?;
    Ok((subject, stored.to_key()?))
}

/// The key file name of `subject` (see the module docs).
fn file_name(subject: &str) -> String {
    let hex = |bytes: &[u8]| {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    };
    let bytes = subject.as_bytes();
    if bytes.len() <= 80 {
        return format!("s{}.key", hex(bytes));
    }
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in bytes {
        hash ^= u128::from(*b);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("s{}~{hash:032x}.key", hex(&bytes[..60]))
}

/// Replaces `dir/name` with `contents` durably: a temporary file, fsync, rename, fsync.
fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory, making creations and deletions in it durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for fsync on this platform.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Reads the erasure records (a torn last line, from a crash while appending, is skipped).
fn read_erasures(dir: &Path) -> Result<Vec<ErasureRecord>, StoreError> {
    let path = dir.join(ERASURES_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("opening", &path)(e)),
    };
    let mut records = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_error("reading", &path))?;
        if let Ok(record) = serde_json::from_str::<ErasureRecord>(&line) {
            records.push(record);
        }
    }
    Ok(records)
}

/// Deletes `name` from `dir` durably, then appends `record` to the records durably.
fn forget_on_disk(dir: &Path, name: &str, record: &ErasureRecord) -> Result<(), StoreError> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir).map_err(io_error("syncing", dir))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("deleting a key in", dir)(e)),
    }
    let path = dir.join(ERASURES_FILE);
    let mut line = serde_json::to_vec(record)
        .map_err(|e| StoreError::InvalidInput(format!("an erasure record: {e}")))?;
    line.push(b'\n');
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_error("opening", &path))?;
    file.write_all(&line)
        .map_err(io_error("appending to", &path))?;
    file.sync_all().map_err(io_error("syncing", &path))?;
    if !existed {
        sync_dir(dir).map_err(io_error("syncing", dir))?;
    }
    Ok(())
}

#[async_trait]
impl KeyStore for DirKeyStore {
    async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        validate_subject(subject)?;
        if let Some(key) = self.inner.keys.lock().get(subject) {
            return Ok(key.clone());
        }
        let _writer = self.inner.write.lock().await;
        if let Some(key) = self.inner.keys.lock().get(subject) {
            return Ok(key.clone());
        }
        let key = SubjectKey::generate();
        self.write_key(subject, &key).await?;
        self.inner
            .keys
            .lock()
            .insert(subject.to_owned(), key.clone());
        Ok(key)
    }

    async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, SubjectKey>, StoreError> {
        let keys = self.inner.keys.lock();
        Ok(subjects
            .iter()
            .filter_map(|s| keys.get(s).map(|k| (s.clone(), k.clone())))
            .collect())
    }

    async fn forget(&self, subject: &str, erased_by: &str) -> Result<ErasureRecord, StoreError> {
        validate_subject(subject)?;
        let _writer = self.inner.write.lock().await;
        let record = ErasureRecord {
            subject: subject.to_owned(),
            erased_by: erased_by.to_owned(),
            erased_at: Utc::now(),
            key_deleted: self.inner.keys.lock().contains_key(subject),
        };
        // Out of memory first: from here on no reader of this store gets the key.
        self.inner.keys.lock().remove(subject);
        let name = file_name(subject);
        let written = record.clone();
        self.blocking(move |dir| forget_on_disk(dir, &name, &written))
            .await?;
        Ok(record)
    }

    async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        self.blocking(read_erasures).await
    }

    async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        let mut keys: Vec<_> = self
            .inner
            .keys
            .lock()
            .iter()
            .map(|(s, k)| (s.clone(), k.clone()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }

    async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError> {
        validate_subject(subject)?;
        let _writer = self.inner.write.lock().await;
        if self.inner.keys.lock().contains_key(subject) {
            return Ok(());
        }
        self.write_key(subject, &key).await?;
        self.inner.keys.lock().insert(subject.to_owned(), key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_are_hex_or_hashed_and_distinct() {
        assert_eq!(file_name("ab"), "s6162.key");
        let long_a = "a".repeat(200);
        let long_b = format!("{}b", "a".repeat(199));
        assert_ne!(file_name(&long_a), file_name(&long_b));
        assert!(file_name(&long_a).len() < 200);
    }
}
