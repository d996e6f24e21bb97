//! Erasure from the command line: `es forget`, `es erasures`, what `events`, `export`,
//! `copy` and `verify` do with `#[pii]` fields before and after a forget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use es_core::erasure::ErasureLayer;
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StreamId};
use es_stores::{FileStore, LmdbStore};

const ALICE: &str = "Alice-Secret-Name-1";
const BOB: &str = "Bob-Secret-Name-22";

/// A payload with one open PII field, as `#[derive(Event)]` encodes it.
fn open(subject: &str, name: &str) -> Vec<u8> {
    serde_json::json!({
        "customer": subject,
        "name": {"$pii": {"v": 1, "s": subject, "f": "Named.name", "p": name, "r": "<erased>"}},
    })
    .to_string()
    .into_bytes()
}

/// Writes one sealed event per subject and a sealed snapshot of alice's stream, as a kernel
/// does.
async fn seed(store: Arc<dyn es_core::store::Store>) {
    let layer = Arc::new(ErasureLayer::new(store.key_store()));
    let events = layer.event_store(store.clone());
    for (subject, name) in [("alice", ALICE), ("bob", BOB)] {
        events
            .append(
                &StreamId::new("customer", subject),
                ExpectedVersion::NoStream,
                vec![NewEvent::new("Named", open(subject, name))],
            )
            .await
            .unwrap();
    }
    let (state, _) = layer.seal(&open("alice", ALICE)).await.unwrap().unwrap();
    store
        .save(Snapshot::new(StreamId::new("customer", "alice"), 1, state))
        .await
        .unwrap();
}

fn contains_bytes(path: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn events_of(url: &str, subject: &str) -> String {
    run_ok(&["--store", url, "events", "customer", subject], 0)
}

#[test]
fn forget_export_copy_and_events_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    rt().block_on(async {
        let store = LmdbStore::open(&source).unwrap();
        seed(Arc::new(store.clone())).await;
        store.close().await.unwrap();
    });
    let url = lmdb(&source);
    assert!(
        events_of(&url, "alice").contains(ALICE),
        "events shows the plaintext"
    );

    // Export: ciphertext only; the keys only into the keys file.
    let exported = tmp.path().join("export.jsonl");
    let keys = tmp.path().join("keys.jsonl");
    run_ok(
        &[
            "--store",
            &url,
            "export",
            "--out",
            exported.to_str().unwrap(),
        ],
        0,
    );
    assert!(!contains_bytes(&exported, ALICE) && !contains_bytes(&exported, BOB));
    assert!(!keys.exists());
    run_ok(
        &[
            "--store",
            &url,
            "export",
            "--out",
            exported.to_str().unwrap(),
            "--with-keys",
            keys.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(std::fs::read_to_string(&keys).unwrap().lines().count(), 2);

    // A copy without the keys reads redacted; with them, in clear.
    let bare = lmdb(&tmp.path().join("bare"));
    run_ok(&["--store", &url, "copy", "--to", &bare], 0);
    let shown = events_of(&bare, "alice");
    assert!(
        shown.contains("<erased>") && !shown.contains(ALICE),
        "{shown}"
    );
    let keyed = lmdb(&tmp.path().join("keyed"));
    run_ok(&["--store", &url, "copy", "--to", &keyed, "--with-keys"], 0);
    assert!(events_of(&keyed, "alice").contains(ALICE));
    // An import with the keys file, likewise.
    let imported = file(&tmp.path().join("imported"));
    run_ok(
        &[
            "--store",
            &imported,
            "import",
            exported.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ],
        0,
    );
    assert!(events_of(&imported, "bob").contains(BOB));

    // Forget alice.
    let out = run_ok(
        &[
            "--store",
            &url,
            "forget",
            "alice",
            "--by",
            "dpo@example.com",
        ],
        0,
    );
    assert!(
        out.contains("forgot subject \"alice\": its key is deleted"),
        "{out}"
    );
    let listed = run_ok(&["--store", &url, "--json", "erasures"], 0);
    let records: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(records[0]["subject"], "alice");
    assert_eq!(records[0]["erased_by"], "dpo@example.com");
    let shown = events_of(&url, "alice");
    assert!(
        shown.contains("<erased>") && !shown.contains(ALICE),
        "{shown}"
    );
    assert!(events_of(&url, "bob").contains(BOB), "bob is untouched");
    run_ok(&["--store", &url, "verify"], 0);

    // A copy made after the forget cannot reveal alice, keys or not.
    let after = lmdb(&tmp.path().join("after"));
    run_ok(&["--store", &url, "copy", "--to", &after, "--with-keys"], 0);
    let shown = events_of(&after, "alice");
    assert!(
        shown.contains("<erased>") && !shown.contains(ALICE),
        "{shown}"
    );
    assert!(events_of(&after, "bob").contains(BOB));
}

#[test]
fn verify_reports_a_snapshot_holding_the_plaintext_of_a_forgotten_subject() {
    let tmp = tempfile::tempdir().unwrap();
    for backend in ["file", "lmdb"] {
        let dir = tmp.path().join(backend);
        let url = if backend == "file" {
            file(&dir)
        } else {
            lmdb(&dir)
        };
        rt().block_on(async {
            let store: Arc<dyn es_core::store::Store> = if backend == "file" {
                Arc::new(FileStore::open(&dir).unwrap())
            } else {
                Arc::new(LmdbStore::open(&dir).unwrap())
            };
            seed(store.clone()).await;
            // Written by something that bypassed the kernel: the field was never sealed.
            store
                .save(Snapshot::new(
                    StreamId::new("customer", "alice"),
                    1,
                    open("alice", ALICE),
                ))
                .await
                .unwrap();
        });
        run_ok(&["--store", &url, "forget", "alice"], 0);
        let out = run(&["--store", &url, "verify"]);
        assert_eq!(out.status.code(), Some(1), "{backend}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(
                "holds the plaintext of PII field Named.name of subject alice (a forgotten subject)"
            ),
            "{backend}: {text}"
        );
    }
}

#[test]
fn forget_refuses_an_empty_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let url = lmdb(&tmp.path().join("s"));
    rt().block_on(async {
        LmdbStore::open(tmp.path().join("s"))
            .unwrap()
            .close()
            .await
            .unwrap();
    });
    let out = run(&["--store", &url, "forget", ""]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be empty"), "{}", stderr(&out));
}
