//! The point of encrypting at write time: the plaintext of a `#[pii]` field is never written
//! to any file of a file or LMDB store (events, snapshots, checkpoints, keys; LMDB's freed
//! pages included), before or after `forget`, and after `forget` the kernel reads the
//! replacement.
#![cfg(all(feature = "lmdb", feature = "file"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod erasure_common;

use std::path::Path;
use std::sync::Arc;

use erasure_common::{Person, leaked, people, run};
use es_core::store::Store;
use es_stores::{FileStore, LmdbStore};
use proptest::prelude::*;

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn check_dir(dir: &Path, people: &[Person]) {
    let all = files(dir);
    assert!(all.len() > 2, "the store wrote files: {all:?}");
    for file in all {
        let bytes = std::fs::read(&file).unwrap();
        if let Some(name) = leaked(&bytes, people) {
            panic!("{} holds the plaintext {name:?}", file.display());
        }
    }
}

fn case(backend: &str, people: &[Person]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if backend == "file" {
            let store = FileStore::open(&dir).unwrap();
            run(Arc::new(store.clone()) as Arc<dyn Store>, people).await;
            store.close().await.unwrap();
        } else {
            let store = LmdbStore::open(&dir).unwrap();
            run(Arc::new(store.clone()) as Arc<dyn Store>, people).await;
            store.close().await.unwrap();
        }
    });
    check_dir(&dir, people);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn no_plaintext_in_any_file_of_the_file_store(people in people()) {
        case("file", &people);
    }

    #[test]
    fn no_plaintext_in_any_file_of_the_lmdb_store(people in people()) {
        case("lmdb", &people);
    }
}

/// The check itself finds a name written in clear (so that the property cannot pass vacuously).
#[test]
fn the_check_finds_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let people = [Person {
        name: "PlainTextName123".into(),
        renamed: "OtherPlainName456".into(),
        forget: true,
    }];
    std::fs::write(tmp.path().join("a"), b"x").unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("sub/b"), b"x").unwrap();
    std::fs::write(tmp.path().join("sub/c"), b"..OtherPlainName456..").unwrap();
    let found = std::panic::catch_unwind(|| check_dir(tmp.path(), &people));
    assert!(found.is_err());
}
