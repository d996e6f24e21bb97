//! [`LmdbStore`]: the embedded durable default store, on LMDB (through heed).
//!
//! # Layout
//!
//! One LMDB environment (a directory holding `data.mdb` and `lock.mdb`, plus the store's own
//! `es-store.lock`) with six named databases:
//!
//! | database | key | value |
//! | --- | --- | --- |
//! | `events` | position (big-endian `u64`) | the event record |
//! | `streams` | stream key ++ sequence (big-endian `u64`) | position (big-endian `u64`) |
//! | `heads` | stream key | stream version (big-endian `u64`) |
//! | `snapshots` | stream key ++ version (big-endian `u64`) | timestamp ++ state |
//! | `checkpoints` | `b'p'` ++ projection name | position ++ optional state |
//! | `meta` | `kind`, `format_version` | `es-stores/lmdb`, format version (big-endian `u32`) |
//!
//! The global log is written with `MDB_APPEND` (positions only grow), so replaying it is a
//! sequential scan; replaying one stream walks its slice of the `streams` index in sequence order.
//! Records use a small binary encoding (see `codec.rs`), never JSON.
//!
//! # Writes
//!
//! All writes (appends, snapshot saves and prunes, checkpoint saves) go through one writer thread
//! that group-commits them: see `writer.rs`. Reads open short LMDB read transactions directly on
//! the calling task (in chunks, yielding between them), so they never wait for the writer.

mod codec;
mod writer;

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use es_core::store::{
    AppendResult, Checkpoint, CheckpointStore, EventStore, ExpectedVersion, FilteredPage, NewEvent,
    RecordedEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, WithoutTls};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use self::codec::FORMAT_VERSION;
use self::writer::{Request, Target, Writer};

/// The untyped LMDB database every table uses; keys and values are encoded by `codec`.
type Db = Database<'static, Bytes, Bytes>;

/// The name of the file the store locks so that only one process opens it at a time.
const LOCK_FILE: &str = "es-store.lock";
/// The files an LMDB store directory may hold.
const STORE_FILES: [&str; 3] = ["data.mdb", "lock.mdb", LOCK_FILE];
/// What the meta database says this environment is.
const KIND: &[u8] = b"es-stores/lmdb";
const KIND_KEY: &[u8] = b"kind";
const FORMAT_VERSION_KEY: &[u8] = b"format_version";
/// Events read per read transaction; readers yield to the runtime between chunks.
const READ_CHUNK: usize = 2048;
/// Every map size is rounded to a multiple of this (a multiple of any OS page size).
const MAP_ALIGN: usize = 64 << 10;
/// How long `open` waits for a store of the same path that is closing in this process.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// How hard each commit works to reach the disk before the writer answers.
///
/// Every mode keeps the store consistent after the *process* crashes (a `kill -9` loses nothing
/// that was acknowledged: committed pages are in the OS page cache). The modes differ in what a
/// crash of the *machine* (power loss, kernel panic) may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Flush data and meta pages on every commit (two `fdatasync`s); an acknowledged write
    /// survives a machine crash. The default.
    #[default]
    Durable,
    /// Flush data pages but not the meta page on every commit (`MDB_NOMETASYNC`): one flush per
    /// commit. A machine crash may undo the last acknowledged commit(s) but keeps the store
    /// consistent.
    NoMetaSync,
    /// Do not flush on commit (`MDB_NOSYNC`); the OS writes pages back when it likes and the store
    /// flushes every `sync_interval` (if set) and when it closes. A machine crash may lose every
    /// commit since the last flush and, on file systems that reorder writes, may corrupt the
    /// store. For caches, tests and data that can be rebuilt.
    NoSync {
        /// Flush in the background this often (`None`: only when the store closes).
        sync_interval: Option<Duration>,
    },
}

/// Options for opening an [`LmdbStore`]; start with [`LmdbStore::options`].
///
/// ```no_run
/// use es_stores::{Durability, LmdbStore};
///
/// let store = LmdbStore::options()
///     .map_size(64 << 20)
///     .max_map_size(16 << 30)
///     .durability(Durability::NoMetaSync)
///     .open("./data")?;
/// # Ok::<(), es_core::store::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmdbOptions {
    map_size: usize,
    max_map_size: usize,
    durability: Durability,
    queue_capacity: usize,
    max_readers: u32,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        Self {
            map_size: 1 << 30,
            max_map_size: if cfg!(target_pointer_width = "64") {
                1 << 40
            } else {
                1 << 30
            },
            durability: Durability::Durable,
            queue_capacity: 4096,
            max_readers: 1024,
        }
    }
}

impl LmdbOptions {
    /// The default options: a 1 GiB initial map growing up to 1 TiB, [`Durability::Durable`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The initial size of the memory map in bytes (default 1 GiB). The data file is sparse: it
    /// grows with the data, not with the map. When the map fills up, the store doubles it (up to
    /// [`max_map_size`](Self::max_map_size)) without failing any write.
    #[must_use]
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.map_size = bytes;
        self
    }

    /// The size the map may grow to (default 1 TiB on 64-bit targets). A write that does not fit
    /// even then fails with [`StoreError::Full`].
    #[must_use]
    pub fn max_map_size(mut self, bytes: usize) -> Self {
        self.max_map_size = bytes;
        self
    }

    /// How each commit reaches the disk (default [`Durability::Durable`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How many write requests may wait for the writer before writers are made to wait
    /// (back-pressure; default 4096).
    #[must_use]
    pub fn queue_capacity(mut self, requests: usize) -> Self {
        self.queue_capacity = requests.max(1);
        self
    }

    /// How many read transactions may be open at once in this process (default 1024).
    #[must_use]
    pub fn max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers.max(1);
        self
    }

    /// Opens (or creates) the store in directory `path`; see [`LmdbStore::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LmdbStore, StoreError> {
        LmdbStore::open_with(path.as_ref(), self)
    }
}

/// The embedded durable event, snapshot and checkpoint store, on LMDB.
///
/// Appends are atomic, checked against the expected version, gapless in sequence and position,
/// and group-committed by one writer thread: many concurrent appenders share one durable commit.
/// Reads never wait for the writer. `Clone` is cheap and shares one store; the store closes
/// (its writer stops and the environment is closed) when the last clone is dropped.
///
/// Opening a path that this process already has open returns the same store (the options of the
/// first open apply). Another process holding the store gets [`StoreError::Locked`]; a directory
/// holding something else gets [`StoreError::Incompatible`].
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

/// The databases of one environment.
#[derive(Clone, Copy)]
struct Dbs {
    events: Db,
    index: Db,
    heads: Db,
    snapshots: Db,
    checkpoints: Db,
}

/// The open stores of this process, by canonical path.
static REGISTRY: Mutex<BTreeMap<PathBuf, Weak<Shared>>> = Mutex::new(BTreeMap::new());
/// Signalled whenever a store has finished closing.
static CLOSED: Condvar = Condvar::new();

/// Everything one open store owns. Fields drop in declaration order: the writer is stopped in
/// `Drop::drop`, then the environment closes, then the lock file is released, then the registry
/// entry goes (so a new `open` of the path never races the old environment).
struct Shared {
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    syncer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    env: Env<WithoutTls>,
    dbs: Dbs,
    head: Arc<watch::Sender<u64>>,
    resize_gate: Arc<RwLock<()>>,
    max_key_size: usize,
    path: PathBuf,
    _lock_file: File,
    _registration: Option<Registration>,
}

/// Removes a closed store from [`REGISTRY`] and wakes `open`s waiting for it.
struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock();
        if registry
            .get(&self.path)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            registry.remove(&self.path);
        }
        drop(registry);
        CLOSED.notify_all();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and stop.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "lmdb writer thread panicked");
        }
        if let Some((stop, syncer)) = self.syncer.take() {
            drop(stop);
            if syncer.join().is_err() {
                tracing::error!(path = %self.path.display(), "lmdb sync thread panicked");
            }
        }
        tracing::debug!(path = %self.path.display(), "lmdb store closed");
    }
}

/// Maps a heed error to a [`StoreError`] with what the store was doing.
fn heed_error(context: &str, error: heed::Error) -> StoreError {
    match error {
        heed::Error::Io(source) => StoreError::io(format!("lmdb: {context}"), source),
        heed::Error::Mdb(MdbError::MapFull) => {
            StoreError::Full(format!("{context}: the LMDB map is full"))
        }
        heed::Error::Mdb(MdbError::Invalid | MdbError::VersionMismatch) => {
            StoreError::Incompatible(format!("{context}: {error}"))
        }
        heed::Error::Mdb(
            MdbError::Corrupted | MdbError::PageNotFound | MdbError::Panic | MdbError::Incompatible,
        ) => StoreError::Corrupt(format!("{context}: {error}")),
        heed::Error::Mdb(MdbError::ReadersFull) => StoreError::Unavailable(format!(
            "{context}: all LMDB reader slots are in use (raise LmdbOptions::max_readers)"
        )),
        heed::Error::EnvAlreadyOpened => StoreError::Locked(format!(
            "{context}: the LMDB environment is already open in this process outside LmdbStore"
        )),
        other => StoreError::Backend {
            backend: "lmdb",
            message: format!("{context}: {other}"),
        },
    }
}

fn round_up(bytes: usize) -> usize {
    bytes
        .div_ceil(MAP_ALIGN)
        .saturating_mul(MAP_ALIGN)
        .max(MAP_ALIGN)
}

/// Refuses a directory that holds other files but no LMDB store (e.g. a `FileStore`).
fn check_directory(path: &Path) -> Result<(), StoreError> {
    let entries =
        fs::read_dir(path).map_err(|e| StoreError::io(format!("list {}", path.display()), e))?;
    let mut foreign = Vec::new();
    let mut has_data = false;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("list {}", path.display()), e))?;
        let name = entry.file_name();
        if name == "data.mdb" {
            has_data = true;
        } else if !STORE_FILES.iter().any(|f| name == *f) {
            foreign.push(name.to_string_lossy().into_owned());
        }
    }
    if !has_data && !foreign.is_empty() {
        foreign.sort();
        foreign.truncate(5);
        return Err(StoreError::Incompatible(format!(
            "{} holds other files ({}) and no LMDB store",
            path.display(),
            foreign.join(", ")
        )));
    }
    Ok(())
}

/// Takes the store's lock file so that only one process opens the store.
fn lock_directory(path: &Path) -> Result<File, StoreError> {
    let lock_path = path.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::io(format!("open {}", lock_path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "{} is open in another process",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => {
            Err(StoreError::io(format!("lock {}", lock_path.display()), e))
        }
    }
}

/// Opens the environment and checks what it holds.
fn open_env(path: &Path, options: &LmdbOptions) -> Result<Env<WithoutTls>, StoreError> {
    let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
    env_options
        .map_size(round_up(options.map_size))
        .max_dbs(8)
        .max_readers(options.max_readers);
    let flags = match options.durability {
        Durability::Durable => EnvFlags::empty(),
        Durability::NoMetaSync => EnvFlags::NO_META_SYNC,
        Durability::NoSync { .. } => EnvFlags::NO_SYNC,
    };
    // SAFETY: `NO_META_SYNC` and `NO_SYNC` only weaken what a machine crash may cost (documented
    // on `Durability`); they do not affect memory safety within the process.
    #[allow(unsafe_code)]
    unsafe {
        env_options.flags(flags);
    }
    // SAFETY: the memory map is only unsound if the file is modified behind LMDB's back. The
    // store locks `es-store.lock` so that no other process opens it through this crate, never uses
    // `NO_LOCK`, and opens each path at most once per process (the registry); read transactions
    // are short and never span an `.await`.
    #[allow(unsafe_code)]
    let env = unsafe { env_options.open(path) };
    env.map_err(|error| match error {
        heed::Error::Mdb(MdbError::Invalid) => StoreError::Incompatible(format!(
            "{} does not hold an LMDB store (data.mdb is not an LMDB file)",
            path.display()
        )),
        heed::Error::Mdb(MdbError::VersionMismatch) => StoreError::Incompatible(format!(
            "{}: data.mdb was written by an incompatible LMDB version",
            path.display()
        )),
        other => heed_error(&format!("open {}", path.display()), other),
    })
}

/// Creates or opens the databases, checking (or, for a new store, writing) the format version.
fn open_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
    let wtxn = env
        .write_txn()
        .map_err(|e| heed_error("begin the opening transaction", e))?;
    let opened = env.create_databases_and_commit(
        wtxn,
        |dbo, wtxn| -> Result<CommitOrAbort<_, StoreError>, heed::Error> {
            let existing: Option<Database<'_, Bytes, Bytes>> =
                dbo.open_database(wtxn, Some("meta"))?;
            let fresh = match existing {
                Some(meta) => {
                    if meta.get(wtxn, KIND_KEY)? != Some(KIND) {
                        return Ok(CommitOrAbort::Abort(StoreError::Incompatible(format!(
                            "{} holds an LMDB environment that is not an es-stores store",
                            path.display()
                        ))));
                    }
                    let version = match meta.get(wtxn, FORMAT_VERSION_KEY)? {
                        Some(bytes) => match <[u8; 4]>::try_from(bytes) {
                            Ok(array) => u32::from_be_bytes(array),
                            Err(_) => {
                                return Ok(CommitOrAbort::Abort(StoreError::Corrupt(format!(
                                    "{}: unreadable format version",
                                    path.display()
                                ))));
                            }
                        },
                        None => {
                            return Ok(CommitOrAbort::Abort(StoreError::Corrupt(format!(
                                "{}: the format version is missing",
                                path.display()
                            ))));
                        }
                    };
                    if version > FORMAT_VERSION {
                        return Ok(CommitOrAbort::Abort(StoreError::Incompatible(format!(
                            "{} uses store format version {version}; this version of es-stores \
                             reads up to format version {FORMAT_VERSION}",
                            path.display()
                        ))));
                    }
                    false
                }
                None => {
                    let main: Option<Database<'_, Bytes, Bytes>> = dbo.open_database(wtxn, None)?;
                    if let Some(main) = main
                        && !main.is_empty(wtxn)?
                    {
                        return Ok(CommitOrAbort::Abort(StoreError::Incompatible(format!(
                            "{} holds an LMDB environment that is not an es-stores store",
                            path.display()
                        ))));
                    }
                    true
                }
            };
            let meta: Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("meta"))?;
            if fresh {
                meta.put(wtxn, KIND_KEY, KIND)?;
                meta.put(wtxn, FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
            }
            let events: Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("events"))?;
            let index: Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("streams"))?;
            let heads: Database<'_, Bytes, Bytes> = dbo.create_database(wtxn, Some("heads"))?;
            let snapshots: Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("snapshots"))?;
            let checkpoints: Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("checkpoints"))?;
            Ok(CommitOrAbort::Commit((
                events,
                index,
                heads,
                snapshots,
                checkpoints,
            )))
        },
    );
    match opened {
        Ok(CommitOrAbort::Commit((events, index, heads, snapshots, checkpoints))) => Ok(Dbs {
            events,
            index,
            heads,
            snapshots,
            checkpoints,
        }),
        Ok(CommitOrAbort::Abort(error)) => Err(error),
        Err(error) => Err(heed_error("open the store's databases", error)),
    }
}

impl LmdbStore {
    /// Opens (or creates) the store in directory `path` with the default options: a durable
    /// commit per group of writes, a map that grows as needed. Creates the directory.
    ///
    /// Errors: [`StoreError::Incompatible`] when the directory holds something else (another kind
    /// of file, an LMDB environment this crate did not write, or a newer format version);
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

        let mut registry = REGISTRY.lock();
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            match registry.get(&path).map(Weak::upgrade) {
                Some(Some(inner)) => {
                    tracing::debug!(path = %path.display(), "lmdb store already open: sharing it");
                    return Ok(LmdbStore { inner });
                }
                Some(None) => {
                    // The last handle was dropped and the store is closing: wait for it.
                    if CLOSED.wait_until(&mut registry, deadline).timed_out() {
                        return Err(StoreError::Locked(format!(
                            "{} is still closing in this process",
                            path.display()
                        )));
                    }
                }
                None => break,
            }
        }
        let shared = Shared::open(&path, options)?;
        let inner = Arc::new(shared);
        registry.insert(path, Arc::downgrade(&inner));
        Ok(LmdbStore { inner })
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
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner
            .env
            .force_sync()
            .map_err(|e| heed_error("flush to disk", e))
    }

    /// Sends a request to the writer and waits for its answer.
    async fn write<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Request,
    ) -> Result<T, StoreError> {
        let requests = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The stream's key, or an error when it is too long for LMDB.
    fn stream_key(&self, stream: &StreamId) -> Result<Vec<u8>, StoreError> {
        let key = codec::stream_key(stream);
        if key.len() + 8 > self.inner.max_key_size {
            return Err(StoreError::InvalidInput(format!(
                "stream id {stream} is too long for LMDB: {} bytes encoded, at most {}",
                key.len(),
                self.inner.max_key_size - 8
            )));
        }
        Ok(key)
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

impl Shared {
    fn open(path: &Path, options: &LmdbOptions) -> Result<Shared, StoreError> {
        check_directory(path)?;
        let lock_file = lock_directory(path)?;
        let env = open_env(path, options)?;
        let dbs = open_databases(&env, path)?;
        let max_map_size = (options.max_map_size / MAP_ALIGN * MAP_ALIGN).max(MAP_ALIGN);
        let resize_gate = Arc::new(RwLock::new(()));
        let head_position = {
            let txn = env
                .read_txn()
                .map_err(|e| heed_error("begin read transaction", e))?;
            match dbs
                .events
                .last(&txn)
                .map_err(|e| heed_error("read head position", e))?
            {
                Some((key, _)) => codec::be_u64(key, "global log key")?,
                None => 0,
            }
        };
        let head = Arc::new(watch::Sender::new(head_position));
        let (requests, receiver) = mpsc::channel(options.queue_capacity);
        let mut shared = Shared {
            requests: Some(requests),
            writer: None,
            syncer: None,
            max_key_size: env.max_key_size(),
            env: env.clone(),
            dbs,
            head: head.clone(),
            resize_gate: resize_gate.clone(),
            path: path.to_path_buf(),
            _lock_file: lock_file,
            _registration: None,
        };
        let writer = Writer {
            env: env.clone(),
            dbs,
            requests: receiver,
            head,
            resize_gate,
            max_map_size,
            sync_on_close: options.durability != Durability::Durable,
            buf: Vec::with_capacity(4096),
        };
        shared.writer = Some(
            std::thread::Builder::new()
                .name("es-lmdb-writer".into())
                .spawn(move || writer.run())
                .map_err(|e| StoreError::io("start the LMDB writer thread", e))?,
        );
        if let Durability::NoSync {
            sync_interval: Some(interval),
        } = options.durability
        {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let env = env.clone();
            let syncer = std::thread::Builder::new()
                .name("es-lmdb-sync".into())
                .spawn(move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(interval)
                    {
                        if let Err(error) = env.force_sync() {
                            tracing::warn!(%error, "lmdb: periodic flush failed");
                        }
                    }
                })
                .map_err(|e| StoreError::io("start the LMDB sync thread", e))?;
            shared.syncer = Some((stop, syncer));
        }
        tracing::info!(
            path = %path.display(),
            head = head_position,
            map_size = env.info().map_size,
            durability = ?options.durability,
            "lmdb store opened"
        );
        // Nothing fails past this point: a `Registration` must never drop inside `open`, which
        // holds the registry lock.
        shared._registration = Some(Registration {
            path: path.to_path_buf(),
        });
        Ok(shared)
    }

    /// Runs `f` in a fresh read transaction, under a shared hold of the resize gate.
    fn read<R>(
        &self,
        context: &str,
        f: impl FnOnce(&RoTxn<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _gate = self.resize_gate.read();
        let txn = self.env.read_txn().map_err(|e| heed_error(context, e))?;
        f(&txn)
    }

    fn event_at(&self, txn: &RoTxn<'_>, position: u64) -> Result<RecordedEvent, StoreError> {
        let bytes = self
            .dbs
            .events
            .get(txn, &position.to_be_bytes())
            .map_err(|e| heed_error("read an event", e))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the stream index points at position {position}, which is missing"
                ))
            })?;
        decode_recorded(bytes, position)
    }
}

fn decode_recorded(bytes: &[u8], position: u64) -> Result<RecordedEvent, StoreError> {
    let event = codec::decode_event(bytes, position)?;
    Ok(RecordedEvent {
        position,
        stream: event.stream,
        sequence: event.sequence,
        event_type: event.event_type,
        event_version: event.event_version,
        timestamp: event.timestamp,
        metadata: event.metadata,
        payload: event.payload,
    })
}

impl LmdbStore {
    /// Scans up to `limit` events of the global log from `from_position`, in short read
    /// transactions, decoding those `accept` takes (all when `None`). Skipped events are never
    /// decoded: only their type is looked at.
    async fn scan_log(
        &self,
        from_position: u64,
        limit: usize,
        accept: Option<for<'t> fn(&'t str) -> bool>,
    ) -> Result<FilteredPage, StoreError> {
        let mut page = FilteredPage {
            events: Vec::with_capacity(if accept.is_none() {
                limit.min(READ_CHUNK)
            } else {
                0
            }),
            ..FilteredPage::default()
        };
        let mut next = from_position.max(1);
        loop {
            let chunk = (limit - page.scanned).min(READ_CHUNK);
            if chunk == 0 {
                break;
            }
            let before = page.scanned;
            let start = next.to_be_bytes();
            self.inner.read("read the global log", |txn| {
                let range = (
                    std::ops::Bound::Included(&start[..]),
                    std::ops::Bound::Unbounded,
                );
                let iter = self
                    .inner
                    .dbs
                    .events
                    .range(txn, &range)
                    .map_err(|e| heed_error("read the global log", e))?;
                for entry in iter.take(chunk) {
                    let (key, bytes) = entry.map_err(|e| heed_error("read the global log", e))?;
                    let position = codec::be_u64(key, "global log key")?;
                    let wanted = match accept {
                        Some(accept) => accept(codec::event_type_of(bytes, position)?),
                        None => true,
                    };
                    if wanted {
                        page.events.push(decode_recorded(bytes, position)?);
                    }
                    page.scanned += 1;
                    page.scanned_to = position;
                }
                Ok(())
            })?;
            if page.scanned - before < chunk {
                break;
            }
            next = page.scanned_to + 1;
            tokio::task::yield_now().await;
        }
        Ok(page)
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
        let key = self.stream_key(stream)?;
        if events.is_empty() {
            let version = self.stream_version(stream).await?;
            expected.check(version)?;
            return Ok(AppendResult {
                version,
                events: Vec::new(),
            });
        }
        let stream = stream.clone();
        self.write(move |reply| Request::Append {
            stream,
            key,
            expected,
            events,
            reply,
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let Ok(key) = self.stream_key(stream) else {
            // Such a stream cannot have been written.
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(limit.min(READ_CHUNK));
        let mut next = from_sequence.max(1);
        let end = codec::suffixed(&key, u64::MAX);
        loop {
            let chunk = (limit - out.len()).min(READ_CHUNK);
            if chunk == 0 {
                break;
            }
            let start = codec::suffixed(&key, next);
            let before = out.len();
            self.inner.read("read a stream", |txn| {
                let range = (
                    std::ops::Bound::Included(start.as_slice()),
                    std::ops::Bound::Included(end.as_slice()),
                );
                let iter = self
                    .inner
                    .dbs
                    .index
                    .range(txn, &range)
                    .map_err(|e| heed_error("read a stream", e))?;
                // A stream's events are often contiguous in the global log (written in
                // batches): once two consecutive positions show up, walk the log with a cursor
                // instead of looking each position up from the root.
                let mut log: Option<heed::RoRange<'_, Bytes, Bytes>> = None;
                let mut previous = 0u64;
                for entry in iter.take(chunk) {
                    let (_, position) = entry.map_err(|e| heed_error("read a stream", e))?;
                    let position = codec::be_u64(position, "stream index entry")?;
                    let contiguous = previous.checked_add(1) == Some(position);
                    previous = position;
                    if !contiguous {
                        log = None;
                        out.push(self.inner.event_at(txn, position)?);
                        continue;
                    }
                    if log.is_none() {
                        let from = position.to_be_bytes();
                        let range = (
                            std::ops::Bound::Included(&from[..]),
                            std::ops::Bound::Unbounded,
                        );
                        log = Some(
                            self.inner
                                .dbs
                                .events
                                .range(txn, &range)
                                .map_err(|e| heed_error("read a stream", e))?,
                        );
                    }
                    let next = log.as_mut().and_then(Iterator::next).transpose();
                    match next.map_err(|e| heed_error("read a stream", e))? {
                        Some((key, bytes)) if key == position.to_be_bytes() => {
                            out.push(decode_recorded(bytes, position)?);
                        }
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "the stream index points at position {position}, which is missing"
                            )));
                        }
                    }
                }
                Ok(())
            })?;
            let read = out.len() - before;
            match out.last() {
                Some(last) if read == chunk => next = last.sequence + 1,
                _ => break,
            }
            tokio::task::yield_now().await;
        }
        Ok(out)
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.scan_log(from_position, limit, None).await?.events)
    }

    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        self.scan_log(from_position, limit, Some(accept)).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let Ok(key) = self.stream_key(stream) else {
            return Ok(0);
        };
        self.inner.read("read a stream version", |txn| {
            match self
                .inner
                .dbs
                .heads
                .get(txn, &key)
                .map_err(|e| heed_error("read a stream version", e))?
            {
                Some(bytes) => codec::be_u64(bytes, "stream head"),
                None => Ok(0),
            }
        })
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.read("read the head position", |txn| {
            match self
                .inner
                .dbs
                .events
                .last(txn)
                .map_err(|e| heed_error("read the head position", e))?
            {
                Some((key, _)) => codec::be_u64(key, "global log key"),
                None => Ok(0),
            }
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }
}

#[async_trait]
impl SnapshotStore for LmdbStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let key = codec::suffixed(&self.stream_key(&snapshot.stream)?, snapshot.version);
        let value = codec::encode_snapshot(&snapshot);
        self.write(move |reply| Request::Put {
            target: Target::Snapshots,
            key,
            value,
            reply,
        })
        .await
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let Ok(prefix) = self.stream_key(stream) else {
            return Ok(None);
        };
        self.inner.read("load a snapshot", |txn| {
            let mut iter = self
                .inner
                .dbs
                .snapshots
                .rev_prefix_iter(txn, &prefix)
                .map_err(|e| heed_error("load a snapshot", e))?;
            match iter.next() {
                Some(entry) => {
                    let (key, bytes) = entry.map_err(|e| heed_error("load a snapshot", e))?;
                    let version = codec::key_suffix(key, "snapshot key")?;
                    codec::decode_snapshot(stream, version, bytes).map(Some)
                }
                None => Ok(None),
            }
        })
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        let Ok(prefix) = self.stream_key(stream) else {
            return Ok(());
        };
        self.write(move |reply| Request::Prune {
            prefix,
            keep_last,
            reply,
        })
        .await
    }
}

#[async_trait]
impl CheckpointStore for LmdbStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let Ok(key) = self.checkpoint_key(name) else {
            return Ok(None);
        };
        self.inner.read("load a checkpoint", |txn| {
            match self
                .inner
                .dbs
                .checkpoints
                .get(txn, &key)
                .map_err(|e| heed_error("load a checkpoint", e))?
            {
                Some(bytes) => codec::decode_checkpoint(name, bytes).map(Some),
                None => Ok(None),
            }
        })
    }

    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let key = self.checkpoint_key(name)?;
        let value = codec::encode_checkpoint(position, state.as_deref());
        self.write(move |reply| Request::Put {
            target: Target::Checkpoints,
            key,
            value,
            reply,
        })
        .await
    }
}
