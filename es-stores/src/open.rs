//! Opening a store from a URL ([`StoreUrl`] says which URLs): [`open`] and [`OpenedStore`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("lmdb:{}", dir.path().join("data").display());
//! let store = es_stores::open(&url).await?;
//! let stream = StreamId::new("bank_account", "acc-1");
//! store.append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())]).await?;
//! assert_eq!(store.head_position().await?, 1);
//!
//! let err = es_stores::open("mysql://localhost/db").await.err().map(|e| e.to_string());
//! assert!(err.is_some_and(|e| e.contains("memory:")));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use es_core::MemoryStore;
use es_core::store::{Store, StoreError, StreamId};

use crate::url::{StoreUrl, unsupported};

/// Opens (creating it when needed) the store named by `url`: `memory:`, `file:DIR`,
/// `lmdb:DIR` or `postgres://...` (see [`StoreUrl`]); each scheme needs its cargo feature.
///
/// # Errors
///
/// [`StoreError::InvalidInput`] for a URL this build cannot open (the message lists the
/// schemes it supports), and whatever the backend's own open or connect returns
/// ([`StoreError::Locked`] when another process has an embedded store open,
/// [`StoreError::Unavailable`] when PostgreSQL cannot be reached, ...).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(OpenedStore::open(url, &OpenOptions::default())
        .await?
        .store())
}

/// How [`OpenedStore::open`] opens a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    create: bool,
    ordered: bool,
    bulk_load: bool,
    release_scanned_pages: bool,
}

impl Default for OpenOptions {
    /// Creates the store when missing; appends may commit in parallel.
    fn default() -> Self {
        Self {
            create: true,
            ordered: false,
            bulk_load: false,
            release_scanned_pages: false,
        }
    }
}

impl OpenOptions {
    /// Whether a missing store is created (default `true`). When `false`, opening a file or
    /// LMDB directory that holds no store, or a PostgreSQL schema without the store's tables,
    /// is [`StoreError::InvalidInput`] (so a mistyped path is not a new empty store).
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Whether the store is opened to be filled in bulk, by a program that can write again
    /// what a machine crash undoes (default `false`). An LMDB store then flushes once per
    /// commit instead of twice (`Durability::NoMetaSync`: a machine crash may undo the last
    /// commits but never breaks the store) and everything when it closes. Copying and
    /// importing ask for it: a rerun continues after the last event that survived.
    #[must_use]
    pub fn bulk_load(mut self, bulk_load: bool) -> Self {
        self.bulk_load = bulk_load;
        self
    }

    /// Whether scans of an LMDB log give back the memory-map pages they read (default
    /// `false`): for a program that reads a large store once, like an export or a copy (see
    /// [`LmdbOptions::release_scanned_pages`](crate::LmdbOptions::release_scanned_pages)).
    /// Other backends ignore it.
    #[must_use]
    pub fn release_scanned_pages(mut self, release: bool) -> Self {
        self.release_scanned_pages = release;
        self
    }

    /// Whether appends must commit in the order they are sent, even when several are in
    /// flight at once (default `false`). The embedded stores always do; PostgreSQL then writes
    /// through a single lane. Copying and importing ask for it.
    #[must_use]
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }
}

/// The concrete store behind an [`OpenedStore`].
#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    #[cfg(feature = "file")]
    File(crate::FileStore),
    #[cfg(feature = "lmdb")]
    Lmdb(crate::LmdbStore),
    #[cfg(feature = "postgres")]
    Postgres(crate::PostgresStore),
}

/// A store opened from a URL, with what an operator tool needs beyond the store traits:
/// the URL, the names of the saved checkpoints, and an explicit close.
#[derive(Clone)]
pub struct OpenedStore {
    url: StoreUrl,
    backend: Backend,
    /// Opened with [`OpenOptions::ordered`].
    ordered: bool,
}

impl fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedStore")
            .field("url", &self.url.to_string())
            .finish_non_exhaustive()
    }
}

impl OpenedStore {
    /// Opens the store named by `url` with `options`.
    ///
    /// # Errors
    ///
    /// As [`open`]; with [`OpenOptions::create`] off, also [`StoreError::InvalidInput`] when
    /// there is no store at that location.
    pub async fn open(url: &str, options: &OpenOptions) -> Result<OpenedStore, StoreError> {
        let url = StoreUrl::parse(url)?;
        if !options.create && !exists(&url) {
            return Err(StoreError::InvalidInput(format!(
                "there is no {} store at {url}: check the path (commands that read never create a store)",
                url.backend()
            )));
        }
        let backend = match &url {
            StoreUrl::Memory => Backend::Memory(MemoryStore::new()),
            #[cfg(feature = "file")]
            StoreUrl::File(dir) => {
                let dir = dir.clone();
                Backend::File(blocking(move || crate::FileStore::open(dir)).await?)
            }
            #[cfg(feature = "lmdb")]
            StoreUrl::Lmdb(dir) => {
                let dir = dir.clone();
                let mut lmdb = crate::LmdbStore::options();
                if options.bulk_load {
                    lmdb = lmdb.durability(crate::Durability::NoMetaSync);
                }
                lmdb = lmdb.release_scanned_pages(options.release_scanned_pages);
                Backend::Lmdb(blocking(move || lmdb.open(dir)).await?)
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres { url, schema } => Backend::Postgres(
                crate::PostgresStore::open_url(
                    url,
                    schema.as_deref(),
                    options.create,
                    options.ordered,
                )
                .await?,
            ),
            #[allow(unreachable_patterns)]
            other => {
                return Err(unsupported(&format!(
                    "this build has no {} store",
                    other.backend()
                )));
            }
        };
        Ok(OpenedStore {
            url,
            backend,
            ordered: options.ordered,
        })
    }

    /// The URL the store was opened from.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The store, usable through every store trait.
    pub fn store(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Memory(s) => Arc::new(s.clone()),
            #[cfg(feature = "file")]
            Backend::File(s) => Arc::new(s.clone()),
            #[cfg(feature = "lmdb")]
            Backend::Lmdb(s) => Arc::new(s.clone()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Whether two appends to the same stream may be in flight at once and still both
    /// commit (in the order sent), when the second expects the exact version the first
    /// leaves. True for the embedded stores, whose single writer applies queued appends one
    /// after another, and for PostgreSQL opened [`ordered`](OpenOptions::ordered): its single
    /// lane writes such a chain of appends in one statement, in order. Without `ordered`,
    /// PostgreSQL's lanes commit in parallel, so it is `false` there.
    pub fn same_stream_pipelining(&self) -> bool {
        self.ordered || !matches!(self.url, StoreUrl::Postgres { .. })
    }

    /// The names of the projections that have a saved checkpoint, sorted.
    ///
    /// # Errors
    ///
    /// The backend's read error.
    pub async fn checkpoint_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names = match &self.backend {
            // A memory store opened from a URL is new: nothing was saved in it.
            Backend::Memory(_) => Vec::new(),
            #[cfg(feature = "file")]
            Backend::File(s) => {
                let s = s.clone();
                blocking(move || s.checkpoint_names()).await?
            }
            #[cfg(feature = "lmdb")]
            Backend::Lmdb(s) => {
                let s = s.clone();
                blocking(move || s.checkpoint_names()).await?
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => s.checkpoint_names().await?,
        };
        names.sort();
        Ok(names)
    }

    /// Up to `limit` streams with their versions (their last sequence), after the stream
    /// `after` (from the first when `None`), in an order of the store's own that stays the
    /// same between calls (stream id order on memory and file stores, key order on LMDB, the
    /// database's text order on PostgreSQL): page through every stream by passing the last
    /// stream of a page as `after`. Reads the stream heads, not the events (PostgreSQL
    /// aggregates its stream index); a memory store scans its log.
    ///
    /// # Errors
    ///
    /// The backend's read error.
    pub async fn stream_heads(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        match &self.backend {
            Backend::Memory(s) => {
                let versions = es_core::store::fold_all(
                    s,
                    ..,
                    std::collections::BTreeMap::new(),
                    |mut versions, e| {
                        versions.insert(e.stream, e.sequence);
                        versions
                    },
                )
                .await?;
                Ok(versions
                    .into_iter()
                    .filter(|(s, _)| after.is_none_or(|a| s > a))
                    .take(limit)
                    .collect())
            }
            #[cfg(feature = "file")]
            Backend::File(s) => Ok(s.stream_heads(after, limit)),
            #[cfg(feature = "lmdb")]
            Backend::Lmdb(s) => {
                let (s, after) = (s.clone(), after.cloned());
                blocking(move || s.stream_heads(after.as_ref(), limit)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => s.stream_heads(after, limit).await,
        }
    }

    /// Closes the store: the embedded stores commit what is queued and release their
    /// directory, PostgreSQL closes its pool.
    ///
    /// # Errors
    ///
    /// What the backend's close reports.
    pub async fn close(self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Memory(_) => Ok(()),
            #[cfg(feature = "file")]
            Backend::File(s) => s.close().await,
            #[cfg(feature = "lmdb")]
            Backend::Lmdb(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => {
                let pool = s.pool().clone();
                drop(s);
                pool.close().await;
                Ok(())
            }
        }
    }
}

/// Runs blocking store work (opening a directory, scanning it) off the async threads.
#[cfg(any(feature = "file", feature = "lmdb"))]
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend {
            backend: "es-stores",
            message: format!("a blocking task failed: {e}"),
        })?
}

/// Whether a store already exists at `url` (PostgreSQL and memory: always `true`, they are
/// checked on open).
fn exists(url: &StoreUrl) -> bool {
    match url {
        #[cfg(feature = "file")]
        StoreUrl::File(dir) => crate::file::holds_store(dir),
        #[cfg(feature = "lmdb")]
        StoreUrl::Lmdb(dir) => crate::lmdb::holds_store(dir),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stream once, with its version, paging two at a time, on each embedded backend
    /// and on a memory store.
    #[tokio::test]
    async fn stream_heads_page_through_every_stream() -> Result<(), StoreError> {
        use es_core::store::{EventStore, ExpectedVersion, NewEvent};
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let mut urls = vec!["memory:".to_owned()];
        if cfg!(feature = "file") {
            urls.push(format!("file:{}", dir.path().join("file").display()));
        }
        if cfg!(feature = "lmdb") {
            urls.push(format!("lmdb:{}", dir.path().join("lmdb").display()));
        }
        for url in urls {
            let opened = OpenedStore::open(&url, &OpenOptions::default()).await?;
            let store = opened.store();
            let mut expected = Vec::new();
            for (i, id) in ["b", "a", "c", "a2", "é"].into_iter().enumerate() {
                let stream = StreamId::new(if i % 2 == 0 { "t1" } else { "t2" }, id);
                let events = (0..=i)
                    .map(|_| NewEvent::new("E", b"{}".to_vec()))
                    .collect();
                store
                    .append(&stream, ExpectedVersion::NoStream, events)
                    .await?;
                expected.push((stream, i as u64 + 1));
            }
            let mut seen = Vec::new();
            let mut after: Option<StreamId> = None;
            loop {
                let page = opened.stream_heads(after.as_ref(), 2).await?;
                assert!(page.len() <= 2, "{url}: a page holds at most the limit");
                let Some(last) = page.last() else { break };
                after = Some(last.0.clone());
                seen.extend(page);
                assert!(seen.len() <= expected.len(), "{url}: a stream came twice");
            }
            seen.sort();
            expected.sort();
            assert_eq!(seen, expected, "{url}");
            drop(store);
            opened.close().await?;
        }
        Ok(())
    }
}
