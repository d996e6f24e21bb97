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

/// The suite again with the stream index written behind the log in batches of 3 events, so
/// that reads join the index and the pending entries at every point of a flush.
mod index_behind_in_small_batches {
    use es_stores::LmdbStore;
    use tempfile::TempDir;

    async fn lmdb() -> Option<(LmdbStore, TempDir)> {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        match LmdbStore::options().index_batch(3).open(dir.path()) {
            Ok(store) => Some((store, dir)),
            Err(e) => panic!("cannot open an LmdbStore in {}: {e}", dir.path().display()),
        }
    }

    es_core::store_conformance_tests!(lmdb, gapless = true);
}

/// The suite again with the index written in each commit (`index_batch(0)`).
mod index_in_each_commit {
    use es_stores::LmdbStore;
    use tempfile::TempDir;

    async fn lmdb() -> Option<(LmdbStore, TempDir)> {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        match LmdbStore::options().index_batch(0).open(dir.path()) {
            Ok(store) => Some((store, dir)),
            Err(e) => panic!("cannot open an LmdbStore in {}: {e}", dir.path().display()),
        }
    }

    es_core::store_conformance_tests!(lmdb, gapless = true);
}
