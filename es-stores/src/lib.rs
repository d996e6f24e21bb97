//! es-stores

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "file")]
pub use file::FileStore;
