//! The store conformance suite of `es_core::testkit` on `FileStore`.
#![cfg(feature = "file")]

use es_stores::FileStore;
use tempfile::TempDir;

async fn file_store() -> Option<(FileStore, TempDir)> {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    match FileStore::open(dir.path()) {
        Ok(store) => Some((store, dir)),
        Err(e) => panic!("cannot open a FileStore in {}: {e}", dir.path().display()),
    }
}

es_core::store_conformance_tests!(file_store);
