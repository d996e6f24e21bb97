//! [`LmdbStore`]: the embedded durable default store, on LMDB (through heed).
//!
//! # Layout
//!
//! One LMDB environment (a directory holding `data.mdb` and `lock.mdb`, plus the store's own
//! `es-store.lock`) with seven named databases:
//!
//! | database | key | value |
//! | --- | --- | --- |
//! | `events` | position (big-endian `u64`) | the event record |
//! | `streams` | stream key ++ sequence (big-endian `u64`) | position (big-endian `u64`) |
//! | `heads` | stream key | stream version (big-endian `u64`) |
//! | `snapshots` | stream key ++ version (big-endian `u64`) | timestamp ++ state |
//! | `checkpoints` | `b'p'` ++ projection name | position ++ optional state |
//! | `truncations` | stream key | the removal recorded (see `delete.rs`) |
//! | `meta` | `kind`, `format_version`, `indexed_to`, `index_generation` | `es-stores/lmdb`, format version (big-endian `u32`, now 3), the position up to which `streams` and `heads` hold every event and the count of commits that wrote them behind the log (big-endian `u64`s) |
//!
//! The global log is written with `MDB_APPEND` (positions only grow), so replaying it is a
//! sequential scan; replaying one stream walks its slice of the `streams` index in sequence order.
//! The `streams` and `heads` databases are written behind the log, in bulk (see `pending.rs`
//! and [`LmdbOptions::index_batch`]): reads join them with the entries held in memory, and
//! opening the store after a crash indexes the log past `indexed_to`.
//! Records use a small binary encoding (see `codec.rs`), never JSON.
//!
//! # Writes
//!
//! All writes (appends, snapshot saves and prunes, checkpoint saves) go through one writer thread
//! that group-commits them: see `commit.rs` (and `crate::group_commit`). Reads open short LMDB read transactions directly on
//! the calling task (in chunks, yielding between them), so they never wait for the writer.
//!
//! # Files
//!
//! `options.rs` (how to open), `open.rs` (environment, typed databases, format version, heed
//! errors), `lifecycle.rs` (the open store's lifecycle and the per-process registry), `read.rs`
//! (the read path), `pages.rs` (releasing the memory-map pages a scan of the log read), `pending.rs`
//! (the stream index written behind the log), `request.rs` (the queued writes), `commit.rs` (the
//! writer's transaction)
//! and `codec.rs` (keys and records).

mod admin;
mod codec;
mod commit;
mod delete;
mod heads;
mod lifecycle;
mod open;
mod options;
mod pages;
mod pending;
mod read;
mod request;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use es_core::store::lifecycle::Truncation;
use es_core::store::{
    AppendResult, BatchAppend, BatchOutcome, Checkpoint, CheckpointStore, EventFilter, EventStore,
    ExpectedVersion, FilteredPage, NewEvent, RecordedEvent, Snapshot, SnapshotStore, StoreError,
    StreamId, validate_append, validate_batch,
};
use tokio::sync::{oneshot, watch};

use self::lifecycle::Shared;
use self::open::heed_error;
pub(crate) use self::open::holds_store;
pub use self::options::{Durability, LmdbOptions};
use self::request::{AppendDone, BatchItem, Reply, Request, Target, batch_outcome};

/// The embedded durable event, snapshot and checkpoint store, on LMDB.
///
/// Appends are atomic, checked against the expected version, gapless in sequence and position,
/// and group-committed by one writer thread: many concurrent appenders share one durable commit.
/// Reads never wait for the writer. `Clone` is cheap and shares one store. Dropping the last
/// clone closes the store before `drop` returns: the writer commits what is queued and stops,
/// the environment closes and the directory is released, so it can be reopened at once;
/// [`LmdbStore::close`] does the same and reports a failure.
///
/// Opening a path that this process already has open returns the same store (the options of the
/// first open apply). Another process holding the store gets [`StoreError::Locked`]; a directory
/// holding something else gets [`StoreError::Incompatible`]. The directory lock is a POSIX
/// record lock, which child processes do not inherit, so a program that spawns processes never
/// keeps a closed store locked. Every call taking a stream checks it with
/// [`StreamId::validate`] first, and an append checks its events' envelopes too
/// ([`validate_append`]); both answer [`StoreError::InvalidInput`] before anything is written.
///
/// With [`LmdbOptions::release_scanned_pages`], a scan of the global log
/// ([`EventStore::read_all`] and the filtered reads) gives back, every 1 MiB or so, the pages
/// of the memory map it has read (on Linux, `madvise(MADV_DONTNEED)` on the read-only shared
/// map): replaying a large store once does not leave the process holding the whole store in
/// its resident memory. The pages stay in the OS page cache; reading them again faults them
/// back in with the same bytes.
///
/// Every event keeps its whole envelope (command, correlation and causation ids, tags, JSON
/// metadata, and a given timestamp to the nanosecond). A store written by an earlier format (1
/// or 2) opens as it is: its records are read as they are and its format version is raised to
/// 3 (whose stream index may lag the log, so that earlier versions of this crate refuse it).
///
/// ```
/// use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
/// use es_stores::LmdbStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = LmdbStore::open(dir.path())?;
/// let stream = StreamId::new("bank_account", "acc-1");
/// let done = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())])
///     .await?;
/// assert_eq!((done.version, done.events[0].position), (1, 1));
/// assert_eq!(store.read_stream(&stream, 1, 100).await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LmdbStore {
    inner: Arc<Shared>,
}

impl LmdbStore {
    /// Opens (or creates) the store in directory `path` with the default options: a durable
    /// commit per group of writes, a map that grows as needed. Creates the directory.
    ///
    /// # Errors
    ///
    /// [`StoreError::Incompatible`] when the directory holds something else (another kind of
    /// file, an LMDB environment this crate did not write, or a newer format version);
    /// [`StoreError::Locked`] when another process has it open; [`StoreError::Io`] otherwise.
    pub fn open(path: impl AsRef<Path>) -> Result<LmdbStore, StoreError> {
        Self::open_with(path.as_ref(), &LmdbOptions::default())
    }

    /// The options builder: `LmdbStore::options().map_size(..).durability(..).open(path)`.
    pub fn options() -> LmdbOptions {
        LmdbOptions::default()
    }

    fn open_with(path: &Path, options: &LmdbOptions) -> Result<LmdbStore, StoreError> {
        if path.exists() && !path.is_dir() {
            return Err(StoreError::Incompatible(format!(
                "{} is not a directory",
                path.display()
            )));
        }
        fs::create_dir_all(path)
            .map_err(|e| StoreError::io(format!("create {}", path.display()), e))?;
        let path = path
            .canonicalize()
            .map_err(|e| StoreError::io(format!("resolve {}", path.display()), e))?;
        Ok(LmdbStore {
            inner: Shared::open_or_share(path, options)?,
        })
    }

    /// Closes this handle. When it is the last one, waits until the queued writes are
    /// committed, the writer stopped (with a final flush under [`Durability::NoSync`] and
    /// [`Durability::NoMetaSync`]) and the environment closed, then releases the directory, and
    /// returns what went wrong on the way. Dropping the last handle does the same but can only
    /// log the error.
    ///
    /// While other clones are alive the store stays open for them and this returns `Ok(())`;
    /// the store closes when the last of them is dropped or closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = es_stores::LmdbStore::open(dir.path())?;
    /// store.close().await?;
    /// let store = es_stores::LmdbStore::open(dir.path())?; // opened anew
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The error of the final flush, a writer thread that panicked, or an environment still in
    /// use 30 s after the store closed.
    pub async fn close(self) -> Result<(), StoreError> {
        let Ok(shared) = Arc::try_unwrap(self.inner) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || shared.close())
            .await
            .map_err(|e| StoreError::Backend {
                backend: "lmdb",
                message: format!("closing task failed: {e}"),
            })?
    }

    /// The store's directory (canonical).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The current size of the memory map in bytes (it grows when the map fills up).
    pub fn map_size(&self) -> usize {
        self.inner.env.info().map_size
    }

    /// Whether `self` and `other` are handles to the same open store.
    pub fn is_same_store(&self, other: &LmdbStore) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Flushes everything committed so far to disk (useful with [`Durability::NoSync`]).
    /// Blocks the calling thread for the duration of an `fdatasync`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the flush fails.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner
            .env
            .force_sync()
            .map_err(|e| heed_error("flush to disk", e))
    }

    /// Sends a request to the writer and waits for its answer.
    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        if let Some(full) = self.inner.queue(make(reply))? {
            full.await?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The key of a checked stream id (it always fits: see `codec::MAX_STREAM_KEY`).
    fn stream_key(stream: &StreamId) -> Result<Vec<u8>, StoreError> {
        stream.validate()?;
        Ok(codec::stream_key(stream))
    }

    fn checkpoint_key(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let mut key = Vec::with_capacity(name.len() + 1);
        key.push(b'p');
        key.extend_from_slice(name.as_bytes());
        if key.len() > self.inner.max_key_size {
            return Err(StoreError::InvalidInput(format!(
                "projection name is too long for LMDB: {} bytes, at most {}",
                name.len(),
                self.inner.max_key_size - 1
            )));
        }
        Ok(key)
    }
}

impl LmdbOptions {
    /// Opens (or creates) the store in directory `path`; see [`LmdbStore::open`].
    ///
    /// # Errors
    ///
    /// As [`LmdbStore::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LmdbStore, StoreError> {
        LmdbStore::open_with(path.as_ref(), self)
    }
}

impl std::fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.inner.path)
            .field("head", &*self.inner.head.borrow())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl EventStore for LmdbStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        let key = codec::stream_key(stream);
        if events.is_empty() {
            let version = self.inner.stream_version(&key)?;
            expected.check(version)?;
            return Ok(AppendResult::unchanged(version));
        }
        let _timer = self.inner.metrics.append_timer();
        let stream = stream.clone();
        self.write(move |reply| Request::append(stream, key, expected, events, reply))
            .await
            .map(AppendDone::into_result)
    }

    /// The whole batch in one write transaction (one commit, one flush), queued at the writer
    /// thread as one request: an error other than a conflict writes nothing of it.
    async fn append_many(&self, batch: Vec<BatchAppend>) -> Result<BatchOutcome, StoreError> {
        validate_batch(&batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _timer = self.inner.metrics.append_timer();
        let items = batch
            .into_iter()
            .map(|append| BatchItem {
                key: codec::stream_key(&append.stream),
                stream: append.stream,
                expected: append.expected,
                events: append.events,
                decided: None,
            })
            .collect();
        self.write(move |reply| Request::append_many(items, reply))
            .await
            .map(batch_outcome)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let key = Self::stream_key(stream)?;
        self.inner.read_stream(&key, from_sequence, limit).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self
            .inner
            .scan_log(from_position, limit, None)
            .await?
            .events)
    }

    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        self.inner
            .scan_log(from_position, limit, Some(EventFilter::types(accept)))
            .await
    }

    async fn read_all_matching(
        &self,
        from_position: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        self.inner
            .scan_log(from_position, limit, Some(filter))
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(&Self::stream_key(stream)?)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    fn key_store(&self) -> Option<Arc<dyn es_core::store::KeyStore>> {
        Some(Arc::new(self.inner.keys.clone()))
    }

    /// One write transaction: the index entries, the log records and the removal record.
    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        let key = Self::stream_key(stream)?;
        let stream = stream.clone();
        self.write(move |reply| Request::truncate(stream, key, before, reply))
            .await
    }

    async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        self.inner.truncations()
    }
}

#[async_trait]
impl SnapshotStore for LmdbStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let key = codec::suffixed(&Self::stream_key(&snapshot.stream)?, snapshot.version);
        let value = codec::encode_snapshot(&snapshot);
        self.write(move |reply| Request::put(Target::Snapshots, key, value, reply))
            .await
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let key = Self::stream_key(stream)?;
        self.inner.load_latest(stream, &key)
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        let prefix = Self::stream_key(stream)?;
        self.write(move |reply| Request::prune(prefix, keep_last, reply))
            .await
    }
}

#[async_trait]
impl CheckpointStore for LmdbStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let Ok(key) = self.checkpoint_key(name) else {
            return Ok(None);
        };
        self.inner.load_checkpoint(name, &key)
    }

    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = self.checkpoint_key(name)?;
        let value = codec::encode_checkpoint(position, state.as_deref());
        self.write(move |reply| Request::put(Target::Checkpoints, key, value, reply))
            .await
    }
}

#[cfg(test)]
mod tests;
