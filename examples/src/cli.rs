//! Choosing a store from the command line: `--store memory|lmdb|file` (kept under a data
//! directory) or any store URL `es_stores::open` takes (`lmdb:DIR`, `file:DIR`,
//! `postgres://...`).

use std::path::Path;
use std::sync::Arc;

use es_core::{Store, StoreError};
use es_stores::StoreUrl;

/// A store named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreChoice {
    url: StoreUrl,
    /// The URL as given to [`es_stores::open`] (with a PostgreSQL password, if any).
    raw: String,
}

impl StoreChoice {
    /// Parses `memory`, `lmdb`, `file` (stored under `data_dir`) or a store URL.
    ///
    /// ```
    /// use es_examples::cli::StoreChoice;
    ///
    /// let choice = StoreChoice::parse("lmdb", std::path::Path::new("./data"))?;
    /// assert_eq!(choice.name(), "lmdb");
    /// assert!(StoreChoice::parse("mysql://x", std::path::Path::new(".")).is_err());
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A message listing the stores this build supports, for anything else.
    pub fn parse(name: &str, data_dir: &Path) -> Result<Self, String> {
        let raw = match name {
            "memory" => "memory:".to_owned(),
            "lmdb" => format!("lmdb:{}", data_dir.join("lmdb").display()),
            "file" => format!("file:{}", data_dir.join("files").display()),
            url => url.to_owned(),
        };
        let url = StoreUrl::parse(&raw)
            .map_err(|e| format!("{e} (or one of the short names memory, lmdb, file)"))?;
        Ok(Self { url, raw })
    }

    /// A short name for messages: `memory`, `lmdb`, `file` or `postgres`.
    pub fn name(&self) -> &'static str {
        self.url.backend()
    }

    /// The store's URL (without a password).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Whether the store keeps its data after the process exits.
    pub fn is_durable(&self) -> bool {
        !matches!(self.url, StoreUrl::Memory)
    }

    /// Opens the chosen store with [`es_stores::open`].
    ///
    /// # Errors
    ///
    /// What opening the store returns.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        es_stores::open(&self.raw).await
    }
}
