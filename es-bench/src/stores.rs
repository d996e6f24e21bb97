//! The stores a run can use, created fresh for each run and removed after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::sync::atomic::{AtomicU64, Ordering};

use es_core::{MemoryStore, Store};
#[cfg(feature = "lmdb")]
use es_stores::Durability;

use crate::error::BenchError;

/// A store backend named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// `MemoryStore`.
    Memory,
    /// `FileStore` (JSON lines, fsync per group commit).
    File,
    /// `LmdbStore` (group commit).
    Lmdb,
    /// `PostgresStore` (needs `--pg-url` or `ES_PG_URL`).
    Postgres,
}

impl StoreKind {
    /// Every backend, in the order `all` runs them.
    pub const ALL: [StoreKind; 4] = [
        StoreKind::Memory,
        StoreKind::Lmdb,
        StoreKind::File,
        StoreKind::Postgres,
    ];

    /// The name used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::File => "file",
            StoreKind::Lmdb => "lmdb",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Whether the store writes to disk (so its results come with the fsync baseline).
    pub fn is_durable(self) -> bool {
        self != StoreKind::Memory
    }
}

/// LMDB commit durability, named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LmdbDurability {
    /// Two flushes per commit (the default, and what the targets are about).
    #[default]
    Durable,
    /// One flush per commit.
    NoMetaSync,
    /// No flush on commit.
    NoSync,
}

impl LmdbDurability {
    /// The name used in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            LmdbDurability::Durable => "durable",
            LmdbDurability::NoMetaSync => "no-meta-sync",
            LmdbDurability::NoSync => "no-sync",
        }
    }

    #[cfg(feature = "lmdb")]
    fn to_lmdb(self) -> Durability {
        match self {
            LmdbDurability::Durable => Durability::Durable,
            LmdbDurability::NoMetaSync => Durability::NoMetaSync,
            LmdbDurability::NoSync => Durability::NoSync {
                sync_interval: None,
            },
        }
    }
}

/// Where and how stores are created.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Parent directory of the per-run data directories (`None`: the system temp dir).
    pub data_root: Option<PathBuf>,
    /// PostgreSQL URL.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub pg_url: Option<String>,
    /// LMDB durability.
    pub lmdb_durability: LmdbDurability,
}

#[cfg(feature = "postgres")]
struct PgEnv {
    pool: sqlx::PgPool,
    schema: String,
}

/// One run's store: a fresh directory, schema or memory store, reopenable, removed on
/// [`StoreEnv::close`].
pub struct StoreEnv {
    kind: StoreKind,
    config: StoreConfig,
    dir: Option<tempfile::TempDir>,
    memory: MemoryStore,
    #[cfg_attr(not(feature = "lmdb"), allow(dead_code))]
    lmdb_durability: LmdbDurability,
    #[cfg(feature = "postgres")]
    pg: Option<PgEnv>,
}

#[cfg(feature = "postgres")]
static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

impl StoreEnv {
    /// Creates a fresh, empty store environment of `kind`.
    pub async fn create(kind: StoreKind, config: &StoreConfig) -> Result<Self, BenchError> {
        let dir = if matches!(kind, StoreKind::File | StoreKind::Lmdb) {
            Some(fresh_dir(config.data_root.as_deref(), kind.name())?)
        } else {
            None
        };
        let mut env = StoreEnv {
            kind,
            config: config.clone(),
            dir,
            memory: MemoryStore::new(),
            lmdb_durability: config.lmdb_durability,
            #[cfg(feature = "postgres")]
            pg: None,
        };
        if kind == StoreKind::Postgres {
            env.create_pg(config).await?;
        }
        Ok(env)
    }

    #[cfg(feature = "postgres")]
    async fn create_pg(&mut self, config: &StoreConfig) -> Result<(), BenchError> {
        let url = config.pg_url.as_deref().ok_or_else(|| {
            BenchError::Usage("the postgres store needs --pg-url URL or ES_PG_URL".to_owned())
        })?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                BenchError::Postgres(format!("connect to {}: {e}", es_stores::redact(url)))
            })?;
        let schema = format!(
            "es_bench_{}_{}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.pg = Some(PgEnv { pool, schema });
        Ok(())
    }

    #[cfg(not(feature = "postgres"))]
    async fn create_pg(&mut self, _: &StoreConfig) -> Result<(), BenchError> {
        Err(BenchError::Usage(
            "this build has no postgres store (cargo feature `postgres`)".to_owned(),
        ))
    }

    /// Another fresh, empty environment of the same kind and configuration.
    pub async fn sibling(&self) -> Result<StoreEnv, BenchError> {
        Box::pin(StoreEnv::create(self.kind, &self.config)).await
    }

    /// The backend.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The run's data directory (file and LMDB stores).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Opens the store (again), through `es_stores::open` with the store's URL (LMDB with a
    /// durability other than the default through its options builder, which the URL cannot
    /// express). For durable stores, every handle of an earlier `open` must be dropped first,
    /// so that this really reopens it (the memory store is shared instead).
    pub async fn open(&self) -> Result<Arc<dyn Store>, BenchError> {
        match self.kind {
            StoreKind::Memory => Ok(Arc::new(self.memory.clone())),
            #[cfg(feature = "lmdb")]
            StoreKind::Lmdb if self.lmdb_durability != LmdbDurability::Durable => {
                let dir = self.data_path("lmdb")?;
                let store = es_stores::LmdbStore::options()
                    .durability(self.lmdb_durability.to_lmdb())
                    .open(dir)?;
                Ok(Arc::new(store))
            }
            StoreKind::Lmdb => {
                let url = format!("lmdb:{}", self.data_path("lmdb")?.display());
                Ok(es_stores::open(&url).await?)
            }
            StoreKind::File => {
                let url = format!("file:{}", self.data_path("files")?.display());
                Ok(es_stores::open(&url).await?)
            }
            #[cfg(feature = "postgres")]
            StoreKind::Postgres => {
                let pg = self.pg.as_ref().ok_or_else(|| {
                    BenchError::Postgres("postgres environment not set up".to_owned())
                })?;
                let base = self.config.pg_url.as_deref().unwrap_or_default();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}schema={}", pg.schema);
                Ok(es_stores::open(&url).await?)
            }
            #[cfg(not(feature = "postgres"))]
            StoreKind::Postgres => Err(BenchError::Usage(
                "this build has no `postgres` store: enable the cargo feature of the same name"
                    .to_owned(),
            )),
        }
    }

    #[cfg_attr(not(any(feature = "lmdb", feature = "file")), allow(dead_code))]
    fn data_path(&self, name: &str) -> Result<PathBuf, BenchError> {
        self.dir()
            .map(|d| d.join(name))
            .ok_or_else(|| BenchError::Usage(format!("no data directory for `{name}`")))
    }

    /// Removes the run's data: the directory, or the postgres schema. Every store handle must
    /// be dropped before.
    pub async fn close(self) -> Result<(), BenchError> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.pg {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", pg.schema))
                .execute(&pg.pool)
                .await
                .map_err(|e| BenchError::Postgres(format!("drop schema {}: {e}", pg.schema)))?;
            pg.pool.close().await;
        }
        if let Some(dir) = self.dir {
            let path = dir.path().to_owned();
            dir.close()
                .map_err(|e| BenchError::io(format!("remove {}", path.display()), e))?;
        }
        Ok(())
    }
}

/// A fresh directory for one run, under `root` or the system temp dir.
pub fn fresh_dir(root: Option<&Path>, name: &str) -> Result<tempfile::TempDir, BenchError> {
    let prefix = format!("es-bench-{name}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    match root {
        Some(root) => {
            std::fs::create_dir_all(root)
                .map_err(|e| BenchError::io(format!("create {}", root.display()), e))?;
            builder
                .tempdir_in(root)
                .map_err(|e| BenchError::io(format!("create a directory in {}", root.display()), e))
        }
        None => builder
            .tempdir()
            .map_err(|e| BenchError::io("create a temporary directory", e)),
    }
}
