//! Choosing a store from the command line: `--store memory|lmdb|file|postgres://...`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use es_core::{MemoryStore, Store, StoreError};

/// A store named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// [`MemoryStore`]: nothing survives the process.
    Memory,
    /// `LmdbStore` under a directory (the default).
    Lmdb(PathBuf),
    /// `FileStore` under a directory.
    File(PathBuf),
    /// `PostgresStore` at a URL.
    Postgres(String),
}

impl StoreChoice {
    /// Parses `memory`, `lmdb`, `file` (stored under `data_dir`) or a `postgres://` URL.
    pub fn parse(name: &str, data_dir: &Path) -> Result<Self, String> {
        match name {
            "memory" => Ok(StoreChoice::Memory),
            "lmdb" => Ok(StoreChoice::Lmdb(data_dir.join("lmdb"))),
            "file" => Ok(StoreChoice::File(data_dir.join("files"))),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreChoice::Postgres(url.to_owned()))
            }
            other => Err(format!(
                "unknown store `{other}`: use memory, lmdb, file or a postgres:// URL"
            )),
        }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            StoreChoice::Memory => "memory",
            StoreChoice::Lmdb(_) => "lmdb",
            StoreChoice::File(_) => "file",
            StoreChoice::Postgres(_) => "postgres",
        }
    }

    /// Whether the store keeps its data after the process exits.
    pub fn is_durable(&self) -> bool {
        !matches!(self, StoreChoice::Memory)
    }

    /// Opens the chosen store.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
            #[cfg(feature = "lmdb")]
            StoreChoice::Lmdb(dir) => Ok(Arc::new(es_stores::LmdbStore::open(dir)?)),
            #[cfg(feature = "file")]
            StoreChoice::File(dir) => Ok(Arc::new(es_stores::FileStore::open(dir)?)),
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres(url) => Ok(Arc::new(es_stores::PostgresStore::connect(url).await?)),
            #[allow(unreachable_patterns)]
            other => Err(StoreError::InvalidInput(format!(
                "this build has no `{}` store: enable the cargo feature of the same name",
                other.name()
            ))),
        }
    }
}
