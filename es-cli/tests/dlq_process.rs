//! `es dlq list|retry|skip` on the checkpoint of a process manager (`process:NAME`) that parked
//! an instance under `ErrorPolicy::Park`: the listing, a skip that keeps its reason, and a retry
//! request that the runner carries out in order when it next starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use es_core::prelude::*;
use es_core::process::ProcessHandle;
use es_core::projection::{ErrorPolicy, ProjectionError};
use es_stores::LmdbStore;
use serde::{Deserialize, Serialize};

/// Whether the handler fails on instance `bad`.
static BROKEN: AtomicBool = AtomicBool::new(true);

/// Counts each instance's events.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    seen: u32,
}

impl ProcessManager for Tally {
    const NAME: &'static str = "tally";
    fn accepts(event_type: &str) -> bool {
        event_type == "Noted"
    }
    fn starts(_: &RecordedEvent) -> bool {
        true
    }
    fn handle(&mut self, _: &RecordedEvent, out: &mut Commands) -> Result<(), ProjectionError> {
        if out.key() == "bad" && BROKEN.load(Ordering::SeqCst) {
            return Err(ProjectionError::State("bad is broken".to_owned()));
        }
        self.seen += 1;
        Ok(())
    }
}

async fn note(store: &LmdbStore, key: &str) -> u64 {
    let done = store
        .append(
            &StreamId::new("note", key),
            ExpectedVersion::Any,
            vec![NewEvent::new("Noted", b"{}".to_vec()).correlation_id(key)],
        )
        .await
        .unwrap();
    done.events[0].position
}

async fn start(store: &LmdbStore) -> (Kernel, ProcessHandle<Tally>) {
    let kernel = Kernel::builder().store(store.clone()).build().unwrap();
    let tally = kernel
        .process_managers()
        .start::<Tally>(
            ProjectionOptions::default()
                .error_policy(ErrorPolicy::park())
                .poll_interval(Duration::from_millis(10)),
        )
        .await
        .unwrap();
    (kernel, tally)
}

/// Parks three events of instance `bad` beside a good one; returns the parked positions.
async fn park_three(dir: &Path) -> Vec<u64> {
    let store = LmdbStore::open(dir).unwrap();
    let (kernel, tally) = start(&store).await;
    let mut parked = Vec::new();
    for _ in 0..3 {
        parked.push(note(&store, "bad").await);
    }
    let last = note(&store, "good").await;
    tally.wait_for(last).await.unwrap();
    assert_eq!(tally.status().dead_letters, 3);
    kernel.shutdown().await;
    drop((kernel, tally));
    store.close().await.unwrap();
    parked
}

#[test]
fn dlq_lists_skips_and_requests_a_retry_of_a_process_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let parked = rt().block_on(park_three(&dir));
    let url = lmdb(&dir);

    let listed = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "process:tally", "--json"],
        0,
    ));
    assert_eq!(listed.len(), 3);
    for (row, position) in listed.iter().zip(&parked) {
        assert_eq!(row["projection"], "process:tally");
        assert_eq!(row["key"], "bad");
        assert_eq!(row["position"].as_u64(), Some(*position));
    }
    assert!(
        listed[0]["error"]
            .as_str()
            .unwrap()
            .contains("bad is broken")
    );
    let table = run_ok(&["--store", &url, "dlq", "list"], 0);
    assert!(
        table.contains("process:tally") && table.contains("3 parked without a retry request"),
        "{table}"
    );

    let p1 = parked[0].to_string();
    let skipped = parse_lines(&run_ok(
        &[
            "--store",
            &url,
            "dlq",
            "skip",
            "process:tally",
            "bad",
            &p1,
            "--reason",
            "bad data",
            "--json",
        ],
        0,
    ));
    assert_eq!(skipped[0]["skipped"], "bad data");
    run_ok(
        &["--store", &url, "dlq", "retry", "process:tally", "bad"],
        0,
    );

    // The fix is deployed: the runner, started again, re-runs the two parked events.
    BROKEN.store(false, Ordering::SeqCst);
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        let (kernel, tally) = start(&store).await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while tally.status().dead_letters > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the requested retry ran");
        assert_eq!(tally.instances().await, 2, "instance `bad` now runs");
        kernel.shutdown().await;
        drop((kernel, tally));
        store.close().await.unwrap();
    });
    let listed = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "process:tally", "--json"],
        0,
    ));
    assert_eq!(
        listed.len(),
        1,
        "only the skipped record is left: {listed:?}"
    );
    assert_eq!(listed[0]["skipped"], "bad data");
}
