//! `es delete-stream` and `es truncate` run as a user runs them, on LMDB and the file store:
//! soft and hard deletes, the refusals (no --yes, no snapshot, past the last event, a stream
//! without events), and `es verify` clean afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use es_core::store::{ExpectedVersion, NewEvent, Snapshot, SnapshotStore, Store, StreamId};
use es_stores::{FileStore, LmdbStore};

fn s(id: &str) -> StreamId {
    StreamId::new("t", id)
}

/// a: 4 events, b: 2, c: 4, interleaved.
async fn fill_streams(store: &dyn Store) {
    let e = || NewEvent::new("E", b"{\"x\":1}".to_vec());
    for (id, n) in [("a", 2), ("b", 1), ("c", 2), ("a", 2), ("b", 1), ("c", 2)] {
        let version = store.stream_version(&s(id)).await.unwrap();
        store
            .append(
                &s(id),
                ExpectedVersion::Exact(version),
                (0..n).map(|_| e()).collect(),
            )
            .await
            .unwrap();
    }
}

fn sequences(url: &str, id: &str) -> Vec<u64> {
    let out = run_ok(&["--store", url, "--json", "events", "t", id], 0);
    parse_lines(&out)
        .iter()
        .map(|line| line["sequence"].as_u64().unwrap())
        .collect()
}

#[track_caller]
fn refused(args: &[&str], wanted: &str) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "es {args:?}: {err}");
    assert!(err.contains(wanted), "es {args:?}: {err}");
}

fn delete_and_truncate(url: &str, save_snapshot: impl Fn()) {
    let out = run_ok(&["--store", url, "delete-stream", "t", "a"], 0);
    assert!(
        out.contains("stream t/a deleted: tombstone written at version 5"),
        "{out}"
    );
    let out = run_ok(&["--store", url, "delete-stream", "t", "a"], 0);
    assert!(out.contains("was already deleted"), "{out}");
    assert_eq!(
        sequences(url, "a"),
        [1, 2, 3, 4, 5],
        "a soft delete keeps the events"
    );

    refused(
        &["--store", url, "delete-stream", "t", "b", "--hard"],
        "--yes",
    );
    assert_eq!(sequences(url, "b"), [1, 2], "refused: nothing changed");
    let out = run_ok(
        &[
            "--store",
            url,
            "--json",
            "delete-stream",
            "t",
            "b",
            "--hard",
            "--yes",
        ],
        0,
    );
    let done = &parse_lines(&out)[0];
    assert_eq!(
        (done["version"].as_u64(), done["removed"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(sequences(url, "b"), [3], "only the tombstone is left");
    refused(
        &["--store", url, "delete-stream", "t", "nothing"],
        "has no events",
    );

    refused(
        &["--store", url, "truncate", "t", "c", "--before", "3"],
        "no snapshot at version 2 or later",
    );
    save_snapshot();
    refused(
        &["--store", url, "truncate", "t", "c", "--before", "9"],
        "its version is 4",
    );
    let out = run_ok(&["--store", url, "truncate", "t", "c", "--before", "3"], 0);
    assert!(out.contains("2 events before sequence 3 removed"), "{out}");
    assert_eq!(sequences(url, "c"), [3, 4]);

    let out = run_ok(&["--store", url, "verify"], 0);
    assert!(out.contains("consistent"), "{out}");
}

#[test]
fn lmdb_delete_stream_and_truncate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        fill_streams(&store).await;
        store.close().await.unwrap();
    });
    delete_and_truncate(&lmdb(&dir), || snapshot(&dir, |d| LmdbStore::open(d)));
}

#[test]
fn file_delete_stream_and_truncate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = FileStore::open(&dir).unwrap();
        fill_streams(&store).await;
        store.close().await.unwrap();
    });
    delete_and_truncate(&file(&dir), || snapshot(&dir, |d| FileStore::open(d)));
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert_eq!(log.matches("\"removed\":true").count(), 4, "{log}");
    assert!(
        !log.contains("\"removed\":true,\"payload\""),
        "no payload kept: {log}"
    );
}

/// Saves a snapshot of t/c at version 2, with the store opened by `open` (and closed again).
fn snapshot<S: Store, E: std::fmt::Debug>(dir: &Path, open: impl Fn(&Path) -> Result<S, E>) {
    rt().block_on(async {
        let store = open(dir).unwrap();
        SnapshotStore::save(&store, Snapshot::new(s("c"), 2, b"{}".to_vec()))
            .await
            .unwrap();
    });
}

/// A removed line in a file store that no recorded removal covers is reported.
#[test]
fn verify_reports_a_removed_line_without_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = FileStore::open(&dir).unwrap();
        fill_streams(&store).await;
        SnapshotStore::save(&store, Snapshot::new(s("c"), 2, b"{}".to_vec()))
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    let url = file(&dir);
    run_ok(&["--store", &url, "truncate", "t", "c", "--before", "3"], 0);
    std::fs::remove_file(dir.join("truncations.json")).unwrap();
    let out = run(&["--store", &url, "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("records no removal covering it"),
        "{stdout}"
    );
}
