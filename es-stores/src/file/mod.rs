//! [`FileStore`]: events, snapshots and checkpoints in plain files a person can read.
//!
//! The directory layout is described in [`layout`] and the JSON text of each file in
//! [`format`](mod@format): both are public, for tools that read a store's files without
//! opening it. The other files: `scan.rs` (the recovery on open), `commit.rs` (the commit step
//! of the group commit), `snapshots.rs` and `checkpoints.rs` (the snapshot and checkpoint
//! files) and `admin.rs` (what an operator tool reads beyond the store traits).

mod admin;
mod checkpoints;
mod commit;
mod delete;
pub mod format;
mod index;
pub mod layout;
mod scan;
mod snapshots;
mod state;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use es_core::store::lifecycle::Truncation;
use es_core::store::{
    AppendResult, BatchAppend, BatchOutcome, Checkpoint, CheckpointStore, EventStore,
    ExpectedVersion, NewEvent, RecordedEvent, Snapshot, SnapshotStore, StoreError, StreamId,
    validate_append, validate_batch,
};
use parking_lot::RwLock;
use tokio::sync::{oneshot, watch};

use self::commit::{AppendRequest, LogWriter, WriteRequest};
use self::index::Line;
pub(crate) use self::layout::holds_store;
use self::layout::{
    CHECKPOINTS_DIR, EVENTS_FILE, LOCK_FILE, SNAPSHOTS_DIR, check_format, ensure_dir, sync_dir,
};
use self::state::State;
use crate::group_commit::WriterThread;
use crate::lock::DirLock;
use crate::metrics::StoreMetrics;

/// How many appends may wait for the writer before appenders are made to wait (back-pressure).
const QUEUE_CAPACITY: usize = 4096;

/// A durable event, snapshot and checkpoint store in plain files under one directory.
///
/// Events are appended to `events.jsonl`, one JSON object per line, readable with `cat`:
///
/// ```text
/// {"position":1,"stream":{"type":"bank_account","id":"acc-1"},"sequence":1,"type":"Deposited","version":1,"timestamp":"2025-01-02T03:04:05.123456789Z","metadata":{},"payload":{"amount":5}}
/// ```
///
/// A payload that is valid JSON is written verbatim under `"payload"`; any other payload is
/// written as base64 under `"payload_base64"`. Snapshots live in
/// `snapshots/<type>.<id>/<version>.json` and checkpoints in `checkpoints/<name>.json`, each
/// replaced atomically (temporary file, fsync, rename, fsync of the directory); names made from
/// user strings are escaped (`%XX`) so they can never leave their directory.
///
/// - **Durable, atomic appends.** An append returns after its events are written with one
///   `write` and flushed with `sync_data`. Appends from concurrent callers that queue up while a
///   flush is running are committed together with one flush (group commit) by a dedicated
///   writer thread, which also checks expected versions; no blocking I/O runs on tokio workers.
///   At most 4096 appends wait for the writer; more appenders wait to be queued
///   (back-pressure).
/// - **Crash recovery.** [`FileStore::open`] scans the log once and keeps in memory only stream
///   heads and the byte offset of each event (reads seek to the lines they need). A torn tail
///   left by a crash during an append (an incomplete last line, or an append of several events
///   with only some lines written) is logged with `tracing::warn!` and truncated (a complete
///   last line that only lacks its newline is kept and given one); any other bad line fails
///   the open with [`StoreError::Corrupt`] naming the file and line, and nothing is rewritten.
/// - **One owner.** The directory is locked while a store is open; a second
///   [`FileStore::open`] of it (from this or another process) fails with
///   [`StoreError::Locked`]. The lock is a POSIX record lock, which child processes do not
///   inherit, so a program that spawns processes never keeps a closed store locked.
/// - **Valid stream ids only.** Every call taking a stream checks it with
///   [`StreamId::validate`] first, and an append checks its events' envelopes too
///   ([`validate_append`]); both answer [`StoreError::InvalidInput`] before anything is
///   written.
/// - **The whole envelope.** Command, correlation and causation ids and tags are written as
///   `"command_id"`, `"correlation_id"`, `"causation_id"` and `"tags"` (each left out when
///   absent or empty), metadata values are any JSON, and a given timestamp is kept to the
///   nanosecond.
/// - **Format.** The directory's `format` file says its format version (2). A directory
///   without one was written by format 1, whose lines are read as they are; opening it writes
///   the file. A directory of a newer format is refused with [`StoreError::Incompatible`].
///
/// `Clone` shares one store. Dropping the last clone commits the appends already queued,
/// stops the writer thread and releases the directory before `drop` returns, so the directory
/// can be reopened at once; [`FileStore::close`] does the same and reports a failure.
///
/// ```
/// use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
/// use es_stores::FileStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::open(dir.path())?;
/// let stream = StreamId::new("bank_account", "acc-1");
/// let done = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())])
///     .await?;
/// assert_eq!(done.version, 1);
/// drop(store);
///
/// let store = FileStore::open(dir.path())?; // everything is still there
/// assert_eq!(store.read_stream(&stream, 1, 10).await?, done.events);
/// let log = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
/// assert!(log.ends_with(r#""payload":{"amount":5}}
/// "#));
/// # Ok::<(), es_core::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct FileStore {
    shared: Arc<Shared>,
}

/// What the clones of one store share. Fields drop in order: the writer thread stops
/// (committing what is queued), then the state goes and the directory lock is released.
struct Shared {
    writer: WriterThread<WriteRequest>,
    metrics: StoreMetrics,
    state: Arc<State>,
    /// The subject keys, in `keys/` (see [`crate::DirKeyStore`]).
    keys: crate::keys::DirKeyStore,
    _lock: DirLock,
}

impl FileStore {
    /// Opens (creating it if needed) the store in directory `dir`.
    ///
    /// Takes the directory's lock, scans the event log to rebuild the in-memory index and
    /// repairs a torn tail (see the type's docs). This call blocks on file I/O; from async code
    /// call it before starting work or inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] if another store has the directory open,
    /// [`StoreError::Incompatible`] if it holds a newer format, [`StoreError::Corrupt`] if the
    /// log holds a bad line (with the file and line number), [`StoreError::Io`] if the files
    /// cannot be created or read.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |what: &str, path: &Path| {
            let context = format!("{what} {}", path.display());
            move |e: io::Error| StoreError::io(context, e)
        };
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let lock =
            DirLock::acquire(&dir, LOCK_FILE).map_err(|e| e.into_store_error("FileStore", &dir))?;
        check_format(&dir)?;

        for sub in [SNAPSHOTS_DIR, CHECKPOINTS_DIR] {
            let path = dir.join(sub);
            ensure_dir(&path).map_err(io("creating", &path))?;
        }
        let keys = crate::keys::DirKeyStore::open(&dir)?;
        let events_path = dir.join(EVENTS_FILE);
        let existed = events_path.exists();
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&events_path)
            .map_err(io("opening", &events_path))?;
        if !existed {
            sync_dir(&dir).map_err(io("syncing", &dir))?;
        }
        let index = scan::scan(&log, &events_path)?;
        let index = delete::recover(&dir, &events_path, index)?;
        let len = index.end();
        let reader = File::open(&events_path).map_err(io("opening", &events_path))?;
        let head = index.head();
        tracing::debug!(dir = %dir.display(), events = head, streams = index.stream_count(), "file store opened");

        let state = Arc::new(State {
            dir: dir.clone(),
            events_path,
            reader,
            index: RwLock::new(index),
            head: watch::Sender::new(head),
            rewrite: RwLock::new(()),
        });
        let metrics = StoreMetrics::new("file");
        let writer = WriterThread::spawn(
            "es-file-writer",
            QUEUE_CAPACITY,
            LogWriter::new(Arc::clone(&state), log, len),
            metrics.group_size.clone(),
        )?;
        Ok(Self {
            shared: Arc::new(Shared {
                writer,
                metrics,
                state,
                keys,
                _lock: lock,
            }),
        })
    }

    /// Closes this handle. When it is the last one, waits until the queued appends are
    /// committed and the writer thread stopped, then releases the directory, and returns what
    /// went wrong on the way (a failed append that could not be undone, a writer that
    /// panicked). Dropping the last handle does the same but can only log the error.
    ///
    /// While other clones are alive the store stays open for them and this returns `Ok(())`;
    /// the store closes when the last of them is dropped or closed.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = es_stores::FileStore::open(dir.path())?;
    /// store.close().await?;
    /// let store = es_stores::FileStore::open(dir.path())?; // the directory is free again
    /// # drop(store);
    /// # Ok::<(), es_core::store::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The error the writer stopped with, if any.
    pub async fn close(self) -> Result<(), StoreError> {
        let Ok(mut shared) = Arc::try_unwrap(self.shared) else {
            return Ok(());
        };
        blocking(move || {
            let stopped = shared.writer.stop();
            drop(shared); // releases the directory
            stopped
        })
        .await
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.state.dir
    }

    fn state(&self) -> Arc<State> {
        Arc::clone(&self.shared.state)
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.shared.state.dir)
            .field("head", &*self.shared.state.head.borrow())
            .finish()
    }
}

/// Runs blocking file work off the tokio workers.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend {
            backend: "file",
            message: format!("blocking file task failed: {e}"),
        })?
}

#[async_trait]
impl EventStore for FileStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        let _timer = (!events.is_empty()).then(|| self.shared.metrics.append_timer());
        let (reply, answer) = oneshot::channel();
        self.shared
            .writer
            .send(WriteRequest::One(AppendRequest {
                stream: stream.clone(),
                expected,
                events,
                reply,
            }))
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The whole batch with one `write` and one `sync_data` (with whatever else the writer
    /// commits in the same group): an encoding failure writes nothing of it. Each append keeps
    /// its own torn-write marker, so a crash during the write may leave the batch's first
    /// appends (each whole) and none of the rest.
    async fn append_many(&self, batch: Vec<BatchAppend>) -> Result<BatchOutcome, StoreError> {
        validate_batch(&batch)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _timer = self.shared.metrics.append_timer();
        let (reply, answer) = oneshot::channel();
        self.shared
            .writer
            .send(WriteRequest::Many { batch, reply })
            .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        stream.validate()?;
        let state = self.state();
        let wanted: Vec<(u64, Line)> = {
            let index = state.index.read();
            let Some(positions) = index.positions(stream) else {
                return Ok(Vec::new());
            };
            let skip = usize::try_from(from_sequence.saturating_sub(1)).unwrap_or(usize::MAX);
            positions
                .iter()
                .skip(skip)
                .filter_map(|&p| index.line(p).map(|line| (p, line)))
                .take(limit)
                .collect()
        };
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        blocking(move || state.read_events(&wanted)).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state();
        let wanted: Vec<(u64, Line)> = {
            let index = state.index.read();
            // Removed events are skipped and count for nothing: a page that starts in a hole
            // still returns the events after it.
            (from_position.max(1)..=index.head())
                .filter_map(|p| index.line(p).map(|line| (p, line)))
                .take(limit)
                .collect()
        };
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        blocking(move || state.read_events(&wanted)).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        stream.validate()?;
        Ok(self.shared.state.index.read().version(stream))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.shared.state.index.read().head())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.state.head.subscribe()
    }

    fn key_store(&self) -> Option<Arc<dyn es_core::store::KeyStore>> {
        Some(Arc::new(self.shared.keys.clone()))
    }

    /// Records the removal (`truncations.json`), then overwrites the removed lines in place
    /// with placeholders of the same length and syncs the log; a crash in between is finished
    /// on the next open. See `delete.rs`.
    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        stream.validate()?;
        let state = self.state();
        let stream = stream.clone();
        blocking(move || state.truncate(&stream, before)).await
    }

    async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        let state = self.state();
        blocking(move || delete::read_truncations(&state.dir)).await
    }
}

#[async_trait]
impl SnapshotStore for FileStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        snapshot.stream.validate()?;
        let state = self.state();
        blocking(move || state.save_snapshot(&snapshot)).await
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        stream.validate()?;
        let state = self.state();
        let stream = stream.clone();
        blocking(move || state.load_snapshot(&stream)).await
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        stream.validate()?;
        let state = self.state();
        let stream = stream.clone();
        blocking(move || state.prune_snapshots(&stream, keep_last)).await
    }
}

#[async_trait]
impl CheckpointStore for FileStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let state = self.state();
        let name = name.to_owned();
        blocking(move || state.load_checkpoint(&name)).await
    }

    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        let store = self.state();
        let name = name.to_owned();
        blocking(move || store.save_checkpoint(&name, position, state.as_deref())).await
    }
}
