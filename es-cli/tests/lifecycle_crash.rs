//! SIGKILL during removals: a child process (this test binary, re-invoked with
//! `ES_LIFECYCLE_CRASH_CHILD=<dir>`) appends to four streams and truncates each after every
//! append, printing what it is about to remove and what it removed; the parent kills it
//! mid-stream, reopens the store and checks that every acknowledged append and removal is
//! there, that each stream's kept events are whole (the interrupted removal happened
//! completely or not at all: never half), that the store takes new writes, and that
//! `es verify` finds it consistent. LMDB (one transaction) and the file store (a record, then
//! lines overwritten in place, finished on open after a crash).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{file, lmdb, run_ok};
use es_core::store::{EventStore, ExpectedVersion, NewEvent, Store, StoreError, StreamId};
use es_stores::{FileStore, LmdbStore};

const CHILD_ENV: &str = "ES_LIFECYCLE_CRASH_CHILD";
const BACKEND_ENV: &str = "ES_LIFECYCLE_CRASH_BACKEND";
const MARK: &str = "@@life";
/// Kinds of report: an append acknowledged (with the version), a removal about to start and
/// one acknowledged (with its `before`).
const APPENDED: u64 = 1;
const REMOVING: u64 = 2;
const REMOVED: u64 = 3;

fn stream(n: u64) -> StreamId {
    StreamId::new("crash", format!("s-{n}"))
}

fn open(dir: &Path, backend: &str) -> Result<Box<dyn Store>, StoreError> {
    Ok(match backend {
        "file" => Box::new(FileStore::open(dir)?),
        _ => Box::new(LmdbStore::open(dir)?),
    })
}

fn report(kind: u64, stream: u64, value: u64) -> Result<(), StoreError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK} {kind} {stream} {value}")
        .and_then(|()| out.flush())
        .map_err(|e| StoreError::io("stdout", e))
}

/// The child: appends and truncates forever.
#[test]
fn crash_child() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let backend = std::env::var(BACKEND_ENV)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = open(Path::new(&dir), &backend)?;
        for i in 0u64.. {
            let n = i % 4;
            let s = stream(n);
            let version = store.stream_version(&s).await?;
            let events = (0..1 + i % 3)
                .map(|k| NewEvent::new("Tick", format!("{{\"i\":{i},\"k\":{k}}}").into_bytes()))
                .collect();
            let done = store
                .append(&s, ExpectedVersion::Exact(version), events)
                .await?;
            report(APPENDED, n, done.version)?;
            // Keep the last event and one before it, now and then all but the last.
            let before = if i % 5 == 0 {
                done.version
            } else {
                done.version.saturating_sub(1).max(1)
            };
            report(REMOVING, n, before)?;
            store.truncate_stream(&s, before).await?;
            report(REMOVED, n, before)?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Runs the child until it has made `kill_after` reports, SIGKILLs it, returns the reports.
fn run_and_kill(dir: &Path, backend: &str, kill_after: usize) -> Vec<[u64; 3]> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(BACKEND_ENV, backend)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reports = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(at) = line.find(MARK) else { continue };
        let fields: Vec<u64> = line[at + MARK.len()..]
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        reports.push([fields[0], fields[1], fields[2]]);
        if !killed && (reports.len() >= kill_after || started.elapsed() > Duration::from_secs(60)) {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    if !killed {
        child.kill().unwrap();
    }
    let status = child.wait().unwrap();
    assert!(killed, "the child exited on its own: {status}");
    reports
}

/// Reopens the store and checks it against the reports.
fn check(dir: &Path, backend: &str, reports: &[[u64; 3]]) {
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut removed: HashMap<u64, u64> = HashMap::new();
    let mut removing: HashMap<u64, u64> = HashMap::new();
    for &[kind, n, value] in reports {
        match kind {
            APPENDED => {
                acked.insert(n, value);
            }
            REMOVING => {
                removing.insert(n, value);
            }
            REMOVED => {
                removed.insert(n, value);
            }
            _ => panic!("unknown report {kind}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open(dir, backend).unwrap();
        let recorded: HashMap<StreamId, u64> = store
            .truncations()
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.stream, t.before))
            .collect();
        let mut positions = Vec::new();
        for n in (0..4).chain([99]) {
            let s = stream(n);
            let version = store.stream_version(&s).await.unwrap();
            assert!(version >= acked.get(&n).copied().unwrap_or(0), "{s}: acked appends kept");
            let kept = store.read_stream(&s, 1, 100_000).await.unwrap();
            let sequences: Vec<u64> = kept.iter().map(|e| e.sequence).collect();
            let Some(&first) = sequences.first() else {
                assert_eq!(version, 0, "{s}");
                continue;
            };
            let whole: Vec<u64> = (first..=version).collect();
            assert_eq!(sequences, whole, "{s}: the kept events are one run up to the version");
            // The removal in flight happened whole or not at all.
            let done = removed.get(&n).copied().unwrap_or(1);
            let in_flight = removing.get(&n).copied().filter(|&b| b > done);
            assert!(
                first == done || Some(first) == in_flight,
                "{s}: starts at {first}; acknowledged removal before {done}, in flight {in_flight:?}"
            );
            if first > 1 {
                assert_eq!(recorded.get(&s), Some(&first), "{s}: the removal is recorded");
            }
            positions.extend(kept.iter().map(|e| e.position));
        }
        positions.sort_unstable();
        let all: Vec<u64> = store
            .read_all(1, 1_000_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(all, positions, "read_all holds exactly the kept events");
        // The store takes new writes, after the highest position.
        let s = stream(99);
        let done = store
            .append(&s, ExpectedVersion::Any, vec![NewEvent::new("After", b"{}".to_vec())])
            .await
            .unwrap();
        assert!(done.events[0].position > *all.last().unwrap_or(&0));
    });
    let url = if backend == "file" {
        file(dir)
    } else {
        lmdb(dir)
    };
    let out = run_ok(&["--store", &url, "verify"], 0);
    assert!(out.contains("consistent"), "{out}");
}

fn crash_iterations(backend: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    for round in 0..4 {
        let reports = run_and_kill(&dir, backend, 60 + 37 * round);
        check(&dir, backend, &reports);
    }
}

#[test]
fn sigkill_during_removals_on_lmdb() {
    crash_iterations("lmdb");
}

#[test]
fn sigkill_during_removals_on_the_file_store() {
    crash_iterations("file");
}
