//! Durable stores for `es-core`, each behind a cargo feature:
//!
//! | store | feature | for |
//! | --- | --- | --- |
//! | [`LmdbStore`] | `lmdb` (default) | the embedded durable default: group commit, crash-safe, zero setup |
//! | [`FileStore`] | `file` (default) | one JSON line per event, readable with `cat`; fsync on append |
//! | `PostgresStore` | `postgres` | several application nodes sharing one store |
//!
//! Every store implements `EventStore`, `SnapshotStore` and `CheckpointStore` and passes the
//! conformance suite of `es_core::testkit`.
//!
//! The embedded stores ([`LmdbStore`], [`FileStore`]) own their directory while open. Their
//! handles are cheap clones of one store; dropping the last one commits what is queued, stops
//! the store's threads and releases the directory before `drop` returns, so it can be reopened
//! at once. `close().await` does the same and returns the error, if any, instead of logging it.
//!
//! ```
//! use es_core::prelude::*;
//! use es_stores::LmdbStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = LmdbStore::open(dir.path().join("data"))?;
//! let stream = StreamId::new("bank_account", "acc-1");
//! let done = store
//!     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("Deposited", br#"{"amount":100}"#.to_vec())])
//!     .await?;
//! assert_eq!(done.version, 1);
//! assert_eq!(store.read_stream(&stream, 1, 10).await?.len(), 1);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "file")]
pub mod file;
#[cfg(any(feature = "file", feature = "lmdb"))]
mod group_commit;
#[cfg(any(feature = "file", feature = "lmdb"))]
mod lock;
#[cfg(feature = "file")]
#[doc(inline)]
pub use file::FileStore;
#[cfg(any(feature = "file", feature = "lmdb"))]
mod keys;
#[cfg(any(feature = "file", feature = "lmdb"))]
pub use keys::DirKeyStore;
#[cfg(feature = "lmdb")]
mod lmdb;
pub mod metrics;
mod open;
#[cfg(feature = "lmdb")]
pub use lmdb::{Durability, LmdbOptions, LmdbStore};
pub use open::{OpenOptions, OpenedStore, open};
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
mod url;
pub use url::{StoreUrl, redact, supported_schemes};
