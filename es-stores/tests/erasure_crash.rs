//! `forget` across SIGKILL: a child process forgets one subject after another through a kernel
//! on a file or LMDB store and acknowledges each; the parent SIGKILLs it at a different point
//! each round, reopens the store and checks the crash rule: a subject with an erasure record
//! has no key (never the record without the key gone), every acknowledged forget has both, and
//! the subjects not reached keep their keys.
//!
//! The child is this test binary re-invoked with `ES_FORGET_CHILD=<dir>`.
#![cfg(all(feature = "lmdb", feature = "file"))]

mod crash_common;

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use crash_common::{MARK, run_and_kill};
use es_core::Kernel;
use es_core::store::{EventStore, KeyStore, Store};
use es_stores::{FileStore, LmdbStore};

const CHILD_ENV: &str = "ES_FORGET_CHILD";
const BACKEND_ENV: &str = "ES_FORGET_BACKEND";
const SUBJECTS: u64 = 1_200;
const ROUNDS: u64 = 16;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(backend: &str, dir: &str) -> Result<Arc<dyn Store>, Box<dyn std::error::Error>> {
    Ok(if backend == "file" {
        Arc::new(FileStore::open(dir)?)
    } else {
        Arc::new(LmdbStore::open(dir)?)
    })
}

fn keys(store: &Arc<dyn Store>) -> Result<Arc<dyn KeyStore>, Box<dyn std::error::Error>> {
    Ok(store.key_store().ok_or("no key store")?)
}

fn subject(i: u64) -> String {
    format!("subject-{i}")
}

#[test]
fn forget_crash_child() -> TestResult {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let backend = std::env::var(BACKEND_ENV)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = open(&backend, &dir)?;
        let kernel = Kernel::builder().store(store.clone()).build()?;
        let forgotten: HashSet<String> = keys(&store)?
            .erasures()
            .await?
            .into_iter()
            .map(|r| r.subject)
            .collect();
        for i in 0..SUBJECTS {
            if forgotten.contains(&subject(i)) {
                continue;
            }
            kernel.forget_by(&subject(i), "crash test").await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{MARK} {i} 0 0")?;
            out.flush()?;
        }
        // Everything forgotten: wait to be killed.
        std::thread::sleep(std::time::Duration::from_secs(120));
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Checks the crash rule on the store in `dir`; returns how many subjects are forgotten.
async fn check(
    backend: &str,
    dir: &str,
    acked: &HashSet<u64>,
) -> Result<usize, Box<dyn std::error::Error>> {
    let store = open(backend, dir)?;
    let keys = keys(&store)?;
    let records: HashSet<String> = keys
        .erasures()
        .await?
        .into_iter()
        .map(|r| r.subject)
        .collect();
    let all: Vec<String> = (0..SUBJECTS).map(subject).collect();
    let present = keys.keys(&all).await?;
    for s in &records {
        assert!(
            !present.contains_key(s),
            "{backend}: {s} has an erasure record but its key is still there"
        );
    }
    for i in acked {
        let s = subject(*i);
        assert!(
            records.contains(&s),
            "{backend}: acknowledged forget of {s} has no record"
        );
        assert!(
            !present.contains_key(&s),
            "{backend}: acknowledged forget of {s} kept its key"
        );
    }
    // Subjects without a key but no record are the forget cut short: at most one per crash.
    let cut = all
        .iter()
        .filter(|s| !present.contains_key(*s) && !records.contains(*s))
        .count();
    assert!(
        cut <= ROUNDS as usize,
        "{backend}: {cut} keys gone without a record"
    );
    drop(store);
    Ok(records.len())
}

fn crash_rounds(backend: &str) -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let dir_str = dir.to_str().ok_or("path")?.to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let store = open(backend, &dir_str)?;
        let keys = keys(&store)?;
        for i in 0..SUBJECTS {
            keys.subject_key(&subject(i)).await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let mut acked = HashSet::new();
    for round in 0..ROUNDS {
        let kill_after = 5 + (round as usize * 13) % 40;
        let acks = run_and_kill(
            "forget_crash_child",
            &[(CHILD_ENV, &dir_str), (BACKEND_ENV, backend)],
            kill_after,
            // Then a little later, a different time each round, to land inside a forget.
            |count| {
                if count == kill_after {
                    let micros = (round * 1_237) % 3_000;
                    std::thread::sleep(std::time::Duration::from_micros(micros));
                }
                Ok(())
            },
        )?;
        acked.extend(acks.iter().map(|[i, _, _]| *i));
        let forgotten = runtime.block_on(check(backend, &dir_str, &acked))?;
        assert!(forgotten >= acked.len(), "{backend}: round {round}");
    }
    Ok(())
}

#[test]
fn forget_survives_sigkill_on_the_file_store() -> TestResult {
    crash_rounds("file")
}

#[test]
fn forget_survives_sigkill_on_the_lmdb_store() -> TestResult {
    crash_rounds("lmdb")
}
