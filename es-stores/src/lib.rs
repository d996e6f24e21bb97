//! es-stores

#[cfg(feature = "lmdb")]
mod lmdb;
#[cfg(feature = "lmdb")]
pub use lmdb::{Durability, LmdbOptions, LmdbStore};
