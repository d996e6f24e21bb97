//! Opening a store from a URL: [`open`], [`StoreUrl`] and [`OpenedStore`].
//!
//! | URL | store | feature |
//! | --- | --- | --- |
//! | `memory:` | `MemoryStore` (nothing survives the process) | always |
//! | `file:DIR` | [`FileStore`](crate::FileStore) in directory `DIR` | `file` |
//! | `lmdb:DIR` | [`LmdbStore`](crate::LmdbStore) in directory `DIR` | `lmdb` |
//! | `postgres://...`, `postgresql://...` | `PostgresStore` | `postgres` |
//!
//! A PostgreSQL URL may carry `schema=NAME` among its query parameters (default
//! `PostgresStore::DEFAULT_SCHEMA`); it is taken out before the rest of the URL is handed to
//! the driver. A scheme this build does not know, or whose feature is off, is
//! [`StoreError::InvalidInput`] listing the schemes this build supports.
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
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use es_core::MemoryStore;
use es_core::store::{Store, StoreError, StreamId};

/// Opens (creating it when needed) the store named by `url`: `memory:`, `file:DIR`,
/// `lmdb:DIR` or `postgres://...`; each scheme needs its cargo feature.
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

/// The URL schemes this build can open, as a user would write them.
pub fn supported_schemes() -> Vec<&'static str> {
    let mut schemes = vec!["memory:"];
    if cfg!(feature = "file") {
        schemes.push("file:DIR");
    }
    if cfg!(feature = "lmdb") {
        schemes.push("lmdb:DIR");
    }
    if cfg!(feature = "postgres") {
        schemes.push("postgres://USER@HOST:PORT/DB[?schema=NAME]");
    }
    schemes
}

fn unsupported(what: &str) -> StoreError {
    StoreError::InvalidInput(format!(
        "{what}; this build supports: {}",
        supported_schemes().join(", ")
    ))
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory:`: an in-process store, empty when opened.
    Memory,
    /// `file:DIR`: a [`FileStore`](crate::FileStore) directory.
    File(PathBuf),
    /// `lmdb:DIR`: an [`LmdbStore`](crate::LmdbStore) directory.
    Lmdb(PathBuf),
    /// `postgres://...`: a PostgreSQL database and schema.
    Postgres {
        /// The connection URL as the driver takes it (without `schema=`).
        url: String,
        /// The schema holding the store's tables, when the URL names one.
        schema: Option<String>,
    },
}

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an unknown scheme, a scheme whose cargo feature is off
    /// in this build, or a `file:`/`lmdb:` URL without a directory; the message lists what
    /// this build supports.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let url = url.trim();
        if url == "memory:" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(unsupported(
                    "this build has no PostgreSQL store (cargo feature `postgres` of es-stores/es-cli)",
                ));
            }
            return Ok(split_schema(url));
        }
        let dir_url = |scheme: &str, rest: &str| -> Result<PathBuf, StoreError> {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                return Err(unsupported(&format!(
                    "`{scheme}:` needs a directory, e.g. `{scheme}:./data`"
                )));
            }
            Ok(PathBuf::from(rest))
        };
        if let Some(rest) = url.strip_prefix("file:") {
            if !cfg!(feature = "file") {
                return Err(unsupported(
                    "this build has no file store (cargo feature `file`)",
                ));
            }
            return Ok(StoreUrl::File(dir_url("file", rest)?));
        }
        if let Some(rest) = url.strip_prefix("lmdb:") {
            if !cfg!(feature = "lmdb") {
                return Err(unsupported(
                    "this build has no LMDB store (cargo feature `lmdb`)",
                ));
            }
            return Ok(StoreUrl::Lmdb(dir_url("lmdb", rest)?));
        }
        let shown = es_core::store::quote_prefix(&redact(url));
        Err(match url.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() && !scheme.contains(['/', '\\', '.']) => {
                unsupported(&format!("unknown store URL scheme `{scheme}:` in {shown}"))
            }
            _ => unsupported(&format!(
                "{shown} is not a store URL (it has no scheme such as `lmdb:`)"
            )),
        })
    }

    /// The backend's short name: `memory`, `file`, `lmdb` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Memory => "memory",
            StoreUrl::File(_) => "file",
            StoreUrl::Lmdb(_) => "lmdb",
            StoreUrl::Postgres { .. } => "postgres",
        }
    }

    /// The directory of a file or LMDB store.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StoreUrl::File(dir) | StoreUrl::Lmdb(dir) => Some(dir),
            _ => None,
        }
    }

    /// Whether the store already exists at this location (PostgreSQL and memory: always
    /// `true`, they are checked on open).
    fn exists(&self) -> bool {
        match self {
            StoreUrl::File(dir) => dir.join("events.jsonl").is_file(),
            StoreUrl::Lmdb(dir) => dir.join("data.mdb").is_file(),
            _ => true,
        }
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

/// Shows the URL as a user wrote it, without a PostgreSQL password.
impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory:"),
            StoreUrl::File(dir) => write!(f, "file:{}", dir.display()),
            StoreUrl::Lmdb(dir) => write!(f, "lmdb:{}", dir.display()),
            StoreUrl::Postgres { url, schema } => {
                f.write_str(&redact(url))?;
                match schema {
                    Some(schema) if url.contains('?') => write!(f, "&schema={schema}"),
                    Some(schema) => write!(f, "?schema={schema}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Takes `schema=NAME` out of a PostgreSQL URL's query.
fn split_schema(url: &str) -> StoreUrl {
    let Some((base, query)) = url.split_once('?') else {
        return StoreUrl::Postgres {
            url: url.to_owned(),
            schema: None,
        };
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = Some(name.to_owned()),
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    StoreUrl::Postgres { url, schema }
}

/// `url` without the password of its user info, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
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
        if !options.create && !url.exists() {
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
            StoreUrl::Postgres { url, schema } => {
                Backend::Postgres(open_postgres(url, schema.as_deref(), options).await?)
            }
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
                let dir = s.dir().join("checkpoints");
                blocking(move || file_checkpoint_names(&dir)).await?
            }
            #[cfg(feature = "lmdb")]
            Backend::Lmdb(s) => {
                let s = s.clone();
                blocking(move || s.checkpoint_names()).await?
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(s) => {
                let sql = format!(
                    "SELECT name FROM \"{}\".checkpoints ORDER BY name",
                    s.schema()
                );
                sqlx::query_scalar::<_, String>(&sql)
                    .fetch_all(s.pool())
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("listing checkpoints: {e}")))?
            }
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
            Backend::Postgres(s) => {
                let (from, cursor) = match after {
                    Some(a) => (
                        "WHERE (stream_type, stream_id) > ($1, $2)",
                        (a.aggregate_type.as_str(), a.aggregate_id.as_str()),
                    ),
                    None => ("WHERE $1 = $2", ("", "")),
                };
                let sql = format!(
                    "SELECT stream_type, stream_id, MAX(sequence) FROM \"{}\".events {from} \
                     GROUP BY stream_type, stream_id ORDER BY stream_type, stream_id LIMIT $3",
                    s.schema()
                );
                let rows: Vec<(String, String, i64)> = sqlx::query_as(&sql)
                    .bind(cursor.0)
                    .bind(cursor.1)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(s.pool())
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!("reading the stream heads: {e}"))
                    })?;
                Ok(rows
                    .into_iter()
                    .map(|(t, id, v)| (StreamId::new(t, id), u64::try_from(v).unwrap_or(0)))
                    .collect())
            }
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

/// The projection names of the checkpoint files in `dir` (each file says its name).
#[cfg(feature = "file")]
fn file_checkpoint_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(format!("listing {}", dir.display()), e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with('.') || !file_name.ends_with(".json") {
            continue; // temporary files of a replacement in progress
        }
        let text = std::fs::read(&path)
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        let named: Named = serde_json::from_slice(&text).map_err(|e| {
            StoreError::Corrupt(format!("{}: not a checkpoint file: {e}", path.display()))
        })?;
        names.push(named.name);
    }
    Ok(names)
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    url: &str,
    schema: Option<&str>,
    options: &OpenOptions,
) -> Result<crate::PostgresStore, StoreError> {
    use std::time::Duration;
    let connect: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| {
        StoreError::InvalidInput(format!("bad PostgreSQL URL {}: {e}", redact(url)))
    })?;
    // The large statements of a bulk append cross the planner's JIT threshold, and compiling
    // them costs more than it saves.
    let connect = connect.options([("jit", "off")]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect)
        .await
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {e}; check that the server runs and the URL is right",
                redact(url)
            ))
        })?;
    let schema = schema.unwrap_or(crate::PostgresStore::DEFAULT_SCHEMA);
    if !options.create {
        let table = format!("\"{}\".events", schema.replace('"', ""));
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("looking for the store's tables: {e}")))?;
        if found.is_none() {
            pool.close().await;
            return Err(StoreError::InvalidInput(format!(
                "there is no event store in schema `{schema}` of {}: check the `schema=` parameter",
                redact(url)
            )));
        }
    }
    let mut builder = crate::PostgresStore::builder(pool).schema(schema);
    if options.ordered {
        builder = builder.lanes(1).max_batch(4096);
    }
    builder.build().await
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

    #[test]
    fn parses_every_scheme() {
        assert_eq!(StoreUrl::parse("memory:").ok(), Some(StoreUrl::Memory));
        if cfg!(feature = "lmdb") {
            assert_eq!(
                StoreUrl::parse("lmdb:./data").ok(),
                Some(StoreUrl::Lmdb(PathBuf::from("./data")))
            );
        }
        if cfg!(feature = "file") {
            assert_eq!(
                StoreUrl::parse("file:///tmp/x").ok(),
                Some(StoreUrl::File(PathBuf::from("/tmp/x")))
            );
        }
    }

    #[test]
    fn unknown_schemes_list_what_is_supported() {
        for url in ["mysql://x/y", "./data", "", "lmdb:", "redis:x"] {
            let Err(StoreError::InvalidInput(message)) = StoreUrl::parse(url) else {
                panic!("{url:?} parsed");
            };
            assert!(message.contains("memory:"), "{message}");
        }
    }

    #[test]
    fn postgres_schema_is_taken_out_of_the_url() {
        assert_eq!(
            split_schema("postgres://u:pw@h/db?sslmode=disable&schema=es_x"),
            StoreUrl::Postgres {
                url: "postgres://u:pw@h/db?sslmode=disable".to_owned(),
                schema: Some("es_x".to_owned()),
            }
        );
        let shown = split_schema("postgres://u:pw@h/db?schema=s").to_string();
        assert_eq!(shown, "postgres://u:***@h/db?schema=s");
    }
}
