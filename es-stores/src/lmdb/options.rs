//! How an [`LmdbStore`](super::LmdbStore) is opened: [`LmdbOptions`] and [`Durability`].

use std::time::Duration;

/// How hard each commit works to reach the disk before the writer answers.
///
/// Every mode keeps the store consistent after the *process* crashes (a `kill -9` loses nothing
/// that was acknowledged: committed pages are in the OS page cache). The modes differ in what a
/// crash of the *machine* (power loss, kernel panic) may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every acknowledged write survives a machine crash: a commit's data pages are flushed,
    /// then its meta page, before its requests are answered. Under load the meta page is
    /// flushed by the next commit's data flush, so a commit costs one `fdatasync` instead of
    /// two; a writer with few or no requests waiting flushes it at once. The default.
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

/// The default of [`LmdbOptions::index_batch`].
const DEFAULT_INDEX_BATCH: usize = 65_536;

/// Options for opening an [`LmdbStore`](super::LmdbStore); start with [`LmdbStore::options`](super::LmdbStore::options).
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
    pub(super) map_size: usize,
    pub(super) max_map_size: usize,
    pub(super) durability: Durability,
    pub(super) queue_capacity: usize,
    pub(super) max_readers: u32,
    pub(super) release_scanned_pages: bool,
    pub(super) index_batch: usize,
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
            release_scanned_pages: false,
            index_batch: DEFAULT_INDEX_BATCH,
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
    /// even then fails with [`StoreError::Full`](es_core::store::StoreError::Full).
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

    /// Whether a scan of the global log gives back, every 1 MiB or so, the pages of the memory
    /// map it has read (default `false`). On Linux this is `madvise(MADV_DONTNEED)` on the
    /// read-only shared map: the pages stay in the OS page cache, and reading them again faults
    /// them back in with the same bytes. A program that reads a large store once (the `es`
    /// CLI's export, verify and copy) then does not end up holding the whole store in its
    /// resident memory; a service whose projections scan the log again and again is better off
    /// keeping the pages mapped (the release made W5's scans about 10% slower).
    #[must_use]
    pub fn release_scanned_pages(mut self, release: bool) -> Self {
        self.release_scanned_pages = release;
        self
    }

    /// How many appended events the stream index may hold back in memory before the writer
    /// starts writing them to it (default 65,536; `0` writes each commit's index entries in
    /// that commit). From then on each commit also writes the pending entries of the next
    /// streams in key order, an eighth of this at a time, until every stream was written once.
    ///
    /// The global log is written and flushed in every commit whatever this is; only the index
    /// from stream to positions, which the log can rebuild, is written behind it. Reads see
    /// every committed event either way. Appends spread over many streams gain the most: an
    /// index written in each commit dirties a page per stream the commit touches (W1 with
    /// 1,024 clients on 10,000 streams: 56k commands/s written in each commit, about three
    /// times that behind). After a crash, opening the store indexes from the log the events the
    /// index did not hold yet (up to about four times this, read back in full) before it
    /// answers. The entries held cost about 8 bytes per event and 100 per stream in memory.
    #[must_use]
    pub fn index_batch(mut self, events: usize) -> Self {
        self.index_batch = events;
        self
    }
}
