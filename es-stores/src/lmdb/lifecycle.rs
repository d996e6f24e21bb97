//! One open store's lifecycle: the per-process registry of open paths, opening, and closing in
//! order (writer stopped, environment closed, directory lock released, registry entry gone).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use es_core::store::StoreError;
use heed::{Env, EnvClosingEvent, WithoutTls};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use super::commit::{Answerer, TxnWriter};
use super::heads::Heads;
use super::open::{Dbs, LOCK_FILE, MAP_ALIGN, check_directory, open_databases, open_env};
use super::options::{Durability, LmdbOptions};
use super::pages::ScannedPages;
use super::pending::{IndexWriter, Pending, catch_up};
use super::request::Request;
use crate::group_commit::WriterThread;
use crate::lock::DirLock;
use crate::metrics::StoreMetrics;

/// The wait for room in a full writer queue (see [`Shared::queue`]).
pub(super) type QueueFull<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// How long opening waits for a store of the same path that is closing in this process, and
/// closing waits for the environment to close.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// The open stores of this process, by canonical path.
static REGISTRY: Mutex<BTreeMap<PathBuf, Weak<Shared>>> = Mutex::new(BTreeMap::new());
/// Signalled whenever a store has finished closing.
static CLOSED: Condvar = Condvar::new();

/// Everything one open store owns. Fields drop in declaration order, which is the closing
/// order: the threads stop (the writer commits what is queued), the environment handle goes,
/// then [`Closer`] waits for LMDB to close the environment, releases the directory lock and
/// removes the registry entry (so a new `open` of the path never races the old environment).
pub(super) struct Shared {
    threads: Threads,
    pub(super) env: Env<WithoutTls>,
    pub(super) dbs: Dbs,
    pub(super) head: Arc<watch::Sender<u64>>,
    /// Held exclusively while the writer resizes the map, shared by every read transaction.
    pub(super) resize_gate: Arc<RwLock<()>>,
    /// LMDB's key size limit.
    pub(super) max_key_size: usize,
    /// What log scans touched of the memory map, released as they go.
    pub(super) scanned_pages: ScannedPages,
    /// The canonical path.
    pub(super) path: PathBuf,
    pub(super) metrics: StoreMetrics,
    /// The subject keys, in `keys/` beside the environment (see [`crate::DirKeyStore`]).
    pub(super) keys: crate::keys::DirKeyStore,
    /// The stream index entries the writer has not written to the databases yet.
    pub(super) pending: Arc<RwLock<Pending>>,
    closer: Closer,
}

/// The store's threads, stopped (writer first) when dropped.
struct Threads {
    writer: WriterThread<Request>,
    /// The periodic flush of [`Durability::NoSync`] with an interval: its stop signal and thread.
    syncer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Threads {
    /// Stops the threads (once); the writer's error if it had one.
    fn stop(&mut self) -> Result<(), StoreError> {
        let stopped = self.writer.stop();
        if let Some((stop, syncer)) = self.syncer.take() {
            drop(stop);
            if syncer.join().is_err() {
                tracing::error!("lmdb sync thread panicked");
            }
        }
        stopped
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(%error, "lmdb store closed with an error");
        }
    }
}

/// The last steps of closing, run once the store's own environment handle is gone.
struct Closer {
    env_closed: EnvClosingEvent,
    lock: Option<DirLock>,
    registration: Option<Registration>,
}

impl Closer {
    /// Waits until LMDB has closed the environment, then releases the directory and the
    /// registry entry (once).
    fn finish(&mut self) -> Result<(), StoreError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let closed = self.env_closed.wait_timeout(CLOSE_WAIT);
        drop(lock);
        drop(self.registration.take());
        if closed {
            Ok(())
        } else {
            Err(StoreError::Backend {
                backend: "lmdb",
                message: format!(
                    "the LMDB environment was still in use {}s after the store closed",
                    CLOSE_WAIT.as_secs()
                ),
            })
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        if let Err(error) = self.finish() {
            tracing::error!(%error, "lmdb store closed with an error");
        }
    }
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

impl Shared {
    /// The open store of canonical `path` in this process, or a newly opened one.
    pub(super) fn open_or_share(
        path: PathBuf,
        options: &LmdbOptions,
    ) -> Result<Arc<Shared>, StoreError> {
        let mut registry = REGISTRY.lock();
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            match registry.get(&path).map(Weak::upgrade) {
                Some(Some(shared)) => {
                    tracing::debug!(path = %path.display(), "lmdb store already open: sharing it");
                    return Ok(shared);
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
        let mut shared = Shared::open(&path, options)?;
        // Nothing fails past this point: a `Registration` must never drop inside this function,
        // which holds the registry lock.
        shared.closer.registration = Some(Registration { path: path.clone() });
        let shared = Arc::new(shared);
        registry.insert(path, Arc::downgrade(&shared));
        Ok(shared)
    }

    fn open(path: &Path, options: &LmdbOptions) -> Result<Shared, StoreError> {
        check_directory(path)?;
        let lock =
            DirLock::acquire(path, LOCK_FILE).map_err(|e| e.into_store_error("LmdbStore", path))?;
        // On an early return the locals drop in reverse order: the environment before the lock.
        let env = open_env(path, options)?;
        let dbs = open_databases(&env, path)?;
        index_unindexed(&env, &dbs, path)?;
        let keys = crate::keys::DirKeyStore::open(path)?;
        if options.durability == Durability::Durable {
            // The opening transaction left its meta page unflushed (see `open_env`).
            env.force_sync()
                .map_err(|e| super::open::heed_error("flush the opening transaction", e))?;
        }
        let pending = Arc::new(RwLock::new(Pending::default()));
        let (head_position, index) = {
            let txn = env
                .read_txn()
                .map_err(|e| super::open::heed_error("begin read transaction", e))?;
            let index = IndexWriter::new(pending.clone(), options.index_batch, &dbs, &txn)?;
            (dbs.head_position(&txn)?, index)
        };
        let head = Arc::new(watch::Sender::new(head_position));
        let resize_gate = Arc::new(RwLock::new(()));
        let metrics = StoreMetrics::new("lmdb");
        let writer = TxnWriter {
            env: env.clone(),
            dbs,
            head: head.clone(),
            resize_gate: resize_gate.clone(),
            max_map_size: (options.max_map_size / MAP_ALIGN * MAP_ALIGN).max(MAP_ALIGN),
            buf: Vec::with_capacity(4096),
            index_key: Vec::with_capacity(64),
            pipelined: options.durability == Durability::Durable,
            deferred: None,
            heads: Heads::default(),
            answers: Answerer::spawn()?,
            index,
            direct: false,
        };
        let mut threads = Threads {
            writer: WriterThread::spawn(
                "es-lmdb-writer",
                options.queue_capacity,
                writer,
                metrics.group_size.clone(),
            )?,
            syncer: None,
        };
        if let Durability::NoSync {
            sync_interval: Some(interval),
        } = options.durability
        {
            threads.syncer = Some(spawn_syncer(env.clone(), interval)?);
        }
        tracing::info!(
            path = %path.display(),
            head = head_position,
            map_size = env.info().map_size,
            durability = ?options.durability,
            "lmdb store opened"
        );
        let env_closed = env.clone().prepare_for_closing();
        Ok(Shared {
            threads,
            metrics,
            keys,
            max_key_size: env.max_key_size(),
            scanned_pages: if options.release_scanned_pages {
                ScannedPages::new(&path.join("data.mdb"))
            } else {
                ScannedPages::off()
            },
            env,
            dbs,
            head,
            resize_gate,
            pending,
            path: path.to_path_buf(),
            closer: Closer {
                env_closed,
                lock: Some(lock),
                registration: None,
            },
        })
    }

    /// Queues a write for the writer thread.
    pub(super) async fn send(&self, request: Request) -> Result<(), StoreError> {
        self.threads.writer.send(request).await
    }

    /// Queues `request` for the writer thread at once when its queue has room (`Ok(None)`);
    /// otherwise returns the future that waits for room. That future is boxed, and only made
    /// when the queue is full, so that the future of every write stays small (well under the
    /// size the allocator serves from its per-thread cache) and holds the request only once.
    pub(super) fn queue(&self, request: Request) -> Result<Option<QueueFull<'_>>, StoreError> {
        Ok(self
            .threads
            .writer
            .try_send(request)?
            .map(|request| Box::pin(self.send(request)) as QueueFull<'_>))
    }

    /// Closes the store now (blocking) and returns the first error met on the way.
    pub(super) fn close(self) -> Result<(), StoreError> {
        let Shared {
            mut threads,
            env,
            mut closer,
            ..
        } = self;
        let stopped = threads.stop();
        drop(env);
        let finished = closer.finish();
        stopped.and(finished)
    }
}

/// Indexes the events a crash left out of the stream index (see `pending.rs`), in a
/// transaction of its own, before the store is used.
fn index_unindexed(env: &Env<WithoutTls>, dbs: &Dbs, path: &Path) -> Result<(), StoreError> {
    let mut txn = env
        .write_txn()
        .map_err(|e| super::open::heed_error("begin the indexing transaction", e))?;
    let indexed = catch_up(dbs, &mut txn)?;
    txn.commit()
        .map_err(|e| super::open::heed_error("commit the indexing transaction", e))?;
    if indexed > 0 {
        tracing::info!(
            path = %path.display(),
            events = indexed,
            "lmdb: indexed the events written after the last index flush"
        );
    }
    Ok(())
}

/// Starts the thread that flushes every `interval` (for [`Durability::NoSync`]).
fn spawn_syncer(
    env: Env<WithoutTls>,
    interval: Duration,
) -> Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>), StoreError> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
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
    Ok((stop, syncer))
}
