//! Opening an environment: the directory checks, the LMDB environment, the databases (typed by
//! their keys and values) and the format version, and the mapping of heed's errors.

use std::fs;
use std::path::Path;

use es_core::store::StoreError;
use heed::byteorder::BigEndian;
use heed::types::{Bytes, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, WithoutTls};

use super::codec::{FORMAT_VERSION, MAX_STREAM_KEY};
use super::options::{Durability, LmdbOptions};

/// A big-endian `u64` (a position, sequence or version), in LMDB's byte order.
pub(super) type BeU64 = U64<BigEndian>;

/// The name of the file the store locks so that only one process opens it at a time.
pub(super) const LOCK_FILE: &str = "es-store.lock";
/// LMDB's data file, which holds the store.
const DATA_FILE: &str = "data.mdb";
/// The files an LMDB store directory may hold.
const STORE_FILES: [&str; 3] = [DATA_FILE, "lock.mdb", LOCK_FILE];
/// What the meta database says this environment is.
const KIND: &[u8] = b"es-stores/lmdb";
const KIND_KEY: &[u8] = b"kind";
const FORMAT_VERSION_KEY: &[u8] = b"format_version";
/// Every map size is rounded to a multiple of this (a multiple of any OS page size).
pub(super) const MAP_ALIGN: usize = 64 << 10;
/// LMDB's key size limit when built with its default `MDB_MAXKEYSIZE` (heed's build).
const LMDB_MAX_KEY: usize = 511;

// The longest stream key plus a sequence or version suffix always fits in an LMDB key.
const _: () = assert!(MAX_STREAM_KEY + 8 <= LMDB_MAX_KEY);

/// The databases of one environment (see the layout in the module docs).
#[derive(Clone, Copy)]
pub(super) struct Dbs {
    /// position → event record.
    pub(super) events: Database<'static, BeU64, Bytes>,
    /// stream key ++ sequence → position.
    pub(super) index: Database<'static, Bytes, BeU64>,
    /// stream key → stream version.
    pub(super) heads: Database<'static, Bytes, BeU64>,
    /// stream key ++ version → timestamp ++ state.
    pub(super) snapshots: Database<'static, Bytes, Bytes>,
    /// `b'p'` ++ projection name → position ++ optional state.
    pub(super) checkpoints: Database<'static, Bytes, Bytes>,
    /// stream key → the removal recorded (see `delete.rs`).
    pub(super) truncations: Database<'static, Bytes, Bytes>,
    /// `kind`, `format_version`, `indexed_to` and `index_generation` (see `pending.rs`).
    pub(super) meta: Database<'static, Bytes, Bytes>,
}

impl Dbs {
    /// The position of the last event of the global log (0 when empty).
    pub(super) fn head_position(&self, txn: &RoTxn<'_>) -> Result<u64, StoreError> {
        let last = self
            .events
            .last(txn)
            .map_err(|e| heed_error("read the head position", e))?;
        Ok(last.map_or(0, |(position, _)| position))
    }
}

/// Maps a heed error to a [`StoreError`] with what the store was doing.
pub(super) fn heed_error(context: &str, error: heed::Error) -> StoreError {
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
        // A key or value that does not decode (e.g. a position that is not 8 bytes).
        heed::Error::Decoding(_) => StoreError::Corrupt(format!("{context}: {error}")),
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

/// `bytes` rounded up to a multiple of [`MAP_ALIGN`] (at least one).
pub(super) fn round_up(bytes: usize) -> usize {
    bytes
        .div_ceil(MAP_ALIGN)
        .saturating_mul(MAP_ALIGN)
        .max(MAP_ALIGN)
}

/// Whether `dir` holds an LMDB store (its data file).
pub(crate) fn holds_store(dir: &Path) -> bool {
    dir.join(DATA_FILE).is_file()
}

/// Refuses a directory that holds other files but no LMDB store (e.g. a `FileStore`).
pub(super) fn check_directory(path: &Path) -> Result<(), StoreError> {
    let entries =
        fs::read_dir(path).map_err(|e| StoreError::io(format!("list {}", path.display()), e))?;
    let mut foreign = Vec::new();
    let mut has_data = false;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("list {}", path.display()), e))?;
        let name = entry.file_name();
        if name == DATA_FILE {
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

/// Opens the environment and checks what it holds.
pub(super) fn open_env(path: &Path, options: &LmdbOptions) -> Result<Env<WithoutTls>, StoreError> {
    let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
    env_options
        .map_size(round_up(options.map_size))
        .max_dbs(16)
        .max_readers(options.max_readers);
    // The durable mode also leaves the meta page unflushed at commit: the writer flushes it
    // before it answers (see `commit.rs`), with the next commit's data flush under load.
    let flags = match options.durability {
        Durability::Durable | Durability::NoMetaSync => EnvFlags::NO_META_SYNC,
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
    let env = env.map_err(|error| match error {
        heed::Error::Mdb(MdbError::Invalid) => StoreError::Incompatible(format!(
            "{} does not hold an LMDB store (data.mdb is not an LMDB file)",
            path.display()
        )),
        heed::Error::Mdb(MdbError::VersionMismatch) => StoreError::Incompatible(format!(
            "{}: data.mdb was written by an incompatible LMDB version",
            path.display()
        )),
        other => heed_error(&format!("open {}", path.display()), other),
    })?;
    if env.max_key_size() < MAX_STREAM_KEY + 8 {
        return Err(StoreError::Incompatible(format!(
            "this LMDB build takes keys of at most {} bytes; stream keys need {}",
            env.max_key_size(),
            MAX_STREAM_KEY + 8
        )));
    }
    Ok(env)
}

/// Creates or opens the databases, checking (or, for a new store, writing) the format version.
pub(super) fn open_databases(env: &Env<WithoutTls>, path: &Path) -> Result<Dbs, StoreError> {
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
                    if version < FORMAT_VERSION {
                        // Older records decode as they are (see `codec`): only the version moves,
                        // in this transaction, so it happens once.
                        meta.put(wtxn, FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
                        tracing::info!(
                            path = %path.display(),
                            from = version,
                            to = FORMAT_VERSION,
                            "lmdb: upgraded the store format"
                        );
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
            let events: Database<'_, BeU64, Bytes> = dbo.create_database(wtxn, Some("events"))?;
            let index: Database<'_, Bytes, BeU64> = dbo.create_database(wtxn, Some("streams"))?;
            let heads: Database<'_, Bytes, BeU64> = dbo.create_database(wtxn, Some("heads"))?;
            let snapshots: Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("snapshots"))?;
            let checkpoints: Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("checkpoints"))?;
            // Added after format 2 without a format change: created here in a store written
            // before it (older code ignores it).
            let truncations: Database<'_, Bytes, Bytes> =
                dbo.create_database(wtxn, Some("truncations"))?;
            Ok(CommitOrAbort::Commit((
                events,
                index,
                heads,
                snapshots,
                (checkpoints, truncations, meta),
            )))
        },
    );
    match opened {
        Ok(CommitOrAbort::Commit((
            events,
            index,
            heads,
            snapshots,
            (checkpoints, truncations, meta),
        ))) => Ok(Dbs {
            events,
            index,
            heads,
            snapshots,
            checkpoints,
            truncations,
            meta,
        }),
        Ok(CommitOrAbort::Abort(error)) => Err(error),
        Err(error) => Err(heed_error("open the store's databases", error)),
    }
}
