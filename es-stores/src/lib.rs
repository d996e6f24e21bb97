//! es-stores

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "file")]
pub use file::FileStore;
#[cfg(feature = "lmdb")]
mod lmdb;
#[cfg(feature = "lmdb")]
pub use lmdb::{Durability, LmdbOptions, LmdbStore};
