//! LmdbStore runs the store conformance suite of `es_core::testkit`, with durable commits: with
//! the default options, with the stream index written behind the log in batches of 3 events
//! (so that reads join the index and the pending entries at every point of a sweep), and with
//! the index written in each commit (`index_batch(0)`).
#![cfg(feature = "lmdb")]

use es_stores::{LmdbOptions, LmdbStore};
use tempfile::TempDir;

/// A fresh durable store opened with `options` in its own temporary directory (removed when the
/// guard drops).
fn open_in_temp(options: LmdbOptions) -> Option<(LmdbStore, TempDir)> {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    match options.open(dir.path()) {
        Ok(store) => Some((store, dir)),
        Err(e) => panic!("cannot open an LmdbStore in {}: {e}", dir.path().display()),
    }
}

async fn lmdb() -> Option<(LmdbStore, TempDir)> {
    open_in_temp(LmdbStore::options())
}

es_core::store_conformance_tests!(lmdb, gapless = true);

mod index_behind_in_small_batches {
    use es_stores::LmdbStore;
    use tempfile::TempDir;

    async fn lmdb() -> Option<(LmdbStore, TempDir)> {
        super::open_in_temp(LmdbStore::options().index_batch(3))
    }

    es_core::store_conformance_tests!(lmdb, gapless = true);
}

mod index_in_each_commit {
    use es_stores::LmdbStore;
    use tempfile::TempDir;

    async fn lmdb() -> Option<(LmdbStore, TempDir)> {
        super::open_in_temp(LmdbStore::options().index_batch(0))
    }

    es_core::store_conformance_tests!(lmdb, gapless = true);
}
