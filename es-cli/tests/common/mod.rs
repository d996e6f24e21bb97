//! Shared helpers for the tests that run the built `es` binary as a user does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use es_core::MemoryStore;
use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, Store,
    StreamId,
};
use serde_json::Value;

/// A current-thread runtime for a test's setup and checks outside the binary.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The `es` binary built for these tests, with no `ES_STORE` from the environment.
pub fn es() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_es"));
    cmd.env_remove("ES_STORE");
    cmd
}

/// Runs `es` with `args` and returns what it did.
pub fn run(args: &[&str]) -> Output {
    es().args(args).output().expect("running es")
}

/// Runs `es` and asserts it exited with `code`; returns stdout.
#[track_caller]
pub fn run_ok(args: &[&str], code: i32) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "es {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// stderr of an output.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A log of `n` events over `streams` streams, interleaved in runs of 1 to 3 events, with
/// JSON and binary payloads, metadata, and a payload holding a newline.
pub fn sample_events(n: usize, streams: usize) -> Vec<(StreamId, NewEvent)> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        let stream = StreamId::new(
            if i.is_multiple_of(3) {
                "order"
            } else {
                "bank_account"
            },
            format!("s-{}", (i * 7919) % streams),
        );
        for k in 0..=(i % 3) {
            if out.len() == n {
                break;
            }
            let at = out.len();
            let event = match at % 10 {
                3 => NewEvent::new("Blob", vec![0u8, 159, 146, 150, b'\n'])
                    .metadata("content_type", "application/octet-stream"),
                7 => NewEvent::new("Pretty", b"{\n  \"a\": 1\n}".to_vec()).version(2),
                5 => NewEvent::new("Deposited", format!(r#"{{"amount":{at}}}"#))
                    .command_id(format!("cmd-{at}"))
                    .correlation_id("order-42")
                    .causation_id(format!("evt-{}", at.saturating_sub(1)))
                    .tag("vip")
                    .tag("eu")
                    .metadata("attempt", at as u64)
                    .metadata("ratio", 0.5)
                    .metadata("nested", serde_json::json!({"a": [1, null, true]}))
                    .timestamp(
                        chrono::DateTime::from_timestamp(1_600_000_000 + at as i64, 123_456_789)
                            .unwrap(),
                    ),
                _ => NewEvent::new("Deposited", format!(r#"{{"amount":{at},"k":{k}}}"#))
                    .metadata("user", format!("u{}", at % 4)),
            };
            out.push((stream.clone(), event));
        }
        i += 1;
    }
    out
}

/// Appends `events` in order, one append per run of one stream.
pub async fn fill(store: &dyn Store, events: Vec<(StreamId, NewEvent)>) {
    let mut run: Vec<NewEvent> = Vec::new();
    let mut current: Option<StreamId> = None;
    for (stream, event) in events {
        if current.as_ref() != Some(&stream) {
            if let Some(s) = current.take() {
                store
                    .append(&s, ExpectedVersion::Any, std::mem::take(&mut run))
                    .await
                    .unwrap();
            }
            current = Some(stream);
        }
        run.push(event);
    }
    if let Some(s) = current {
        store.append(&s, ExpectedVersion::Any, run).await.unwrap();
    }
}

/// Adds a snapshot of the first stream at version 1 and a checkpoint `balances` at
/// `position` with a state.
pub async fn add_snapshot_and_checkpoint(store: &dyn Store, position: u64) {
    let first = store.read_all(1, 1).await.unwrap().remove(0);
    SnapshotStore::save(
        store,
        Snapshot::new(first.stream, 1, br#"{"balance":1}"#.to_vec()),
    )
    .await
    .unwrap();
    CheckpointStore::save(store, "balances", position, Some(b"{\"n\":1}".to_vec()))
        .await
        .unwrap();
}

/// What a memory store holding `events` exports: the first link of the copy chains.
pub async fn memory_export(path: &Path, events: Vec<(StreamId, NewEvent)>) -> Vec<Value> {
    let store = MemoryStore::new();
    fill(&store, events).await;
    let mut out = Vec::new();
    for e in store.read_all(1, 1_000_000).await.unwrap() {
        es_cli::format::write_line(&mut out, &e).unwrap();
    }
    std::fs::write(path, &out).unwrap();
    parse_lines(&String::from_utf8(out).unwrap())
}

/// JSON lines parsed.
pub fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// `es export` of `url`, parsed.
pub fn export(url: &str) -> Vec<Value> {
    parse_lines(&run_ok(&["--store", url, "export"], 0))
}

/// The lines without the fields a store assigns itself: `position` always, `timestamp` too
/// when `keep_timestamps` is false.
pub fn comparable(lines: &[Value], keep_positions: bool, keep_timestamps: bool) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            let o = l.as_object_mut().unwrap();
            if !keep_positions {
                o.remove("position");
            }
            if !keep_timestamps {
                o.remove("timestamp");
            }
            l
        })
        .collect()
}

/// Whether this build keeps given timestamps (the envelope's `NewEvent::timestamp`).
pub const KEEPS_TIMESTAMPS: bool = true;

/// `es stats --json`.
pub fn stats(url: &str) -> Value {
    serde_json::from_str(&run_ok(&["--store", url, "--json", "stats"], 0)).unwrap()
}

/// `es projections --json`, parsed.
pub fn projections(url: &str) -> Vec<Value> {
    parse_lines(&run_ok(&["--store", url, "--json", "projections"], 0))
}

/// A `lmdb:` URL for `dir`.
pub fn lmdb(dir: &Path) -> String {
    format!("lmdb:{}", dir.display())
}

/// A `file:` URL for `dir`.
pub fn file(dir: &Path) -> String {
    format!("file:{}", dir.display())
}

/// Asserts two exports are equal, showing only the first difference.
#[track_caller]
pub fn assert_same(actual: &[Value], expected: &[Value], what: &str) {
    if let Some(i) = (0..actual.len().min(expected.len())).find(|&i| actual[i] != expected[i]) {
        panic!(
            "{what}: line {} differs:\n  actual:   {}\n  expected: {}",
            i + 1,
            actual[i],
            expected[i]
        );
    }
    assert_eq!(actual.len(), expected.len(), "{what}: not as many lines");
}

/// An LMDB store at `dir` filled with `events` quickly (no flush per commit; closing flushes).
pub async fn lmdb_source(dir: &Path, events: Vec<(StreamId, NewEvent)>) {
    let store = es_stores::LmdbStore::options()
        .durability(es_stores::Durability::NoSync {
            sync_interval: None,
        })
        .open(dir)
        .unwrap();
    fill(&store, events).await;
    store.close().await.unwrap();
}

/// Asserts the sample's envelopes made it into an export (so comparing exports compares them).
#[track_caller]
pub fn assert_envelope_exported(lines: &[Value]) {
    let line = lines
        .iter()
        .find(|l| l["command_id"] == "cmd-5")
        .expect("no line with the envelope of event 5");
    assert_eq!(line["correlation_id"], "order-42");
    assert_eq!(line["causation_id"], "evt-4");
    assert_eq!(line["tags"], serde_json::json!(["vip", "eu"]));
    assert_eq!(line["metadata"]["attempt"], 5);
    assert_eq!(line["metadata"]["ratio"], 0.5);
    assert_eq!(
        line["metadata"]["nested"],
        serde_json::json!({"a": [1, null, true]})
    );
    assert_eq!(line["timestamp"], "2020-09-13T12:26:45.123456789Z");
}
