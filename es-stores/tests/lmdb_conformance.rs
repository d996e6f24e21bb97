//! LmdbStore runs the store conformance suite of `es_core::testkit`, with durable commits.
#![cfg(feature = "lmdb")]

use es_stores::LmdbStore;
use tempfile::TempDir;

/// A fresh durable store in its own temporary directory (removed when the guard drops).
async fn lmdb() -> Option<(LmdbStore, TempDir)> {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    match LmdbStore::open(dir.path()) {
        Ok(store) => Some((store, dir)),
        Err(e) => panic!("cannot open an LmdbStore in {}: {e}", dir.path().display()),
    }
}

es_core::store_conformance_tests!(lmdb, gapless = true);
