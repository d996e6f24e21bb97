//! es-stores

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "file")]
pub use file::FileStore;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
