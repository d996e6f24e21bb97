//! `es dlq list|retry|skip` on an LMDB store whose projection parked events under
//! `ErrorPolicy::Park`: the listing (table and --json), a skip that keeps its reason, a retry
//! request that the runner carries out in order when it next starts, a copy that carries them
//! along, and the errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use es_core::prelude::*;
use es_core::projection::{ErrorPolicy, ProjectionError, ProjectionHandle};
use es_stores::LmdbStore;
use serde::{Deserialize, Serialize};

/// Whether the handler fails on stream `note/bad`.
static BROKEN: AtomicBool = AtomicBool::new(true);

/// Every event applied, as (stream id, sequence), in order; persisted.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Ledger {
    applied: Vec<(String, u64)>,
}

impl Ledger {
    fn of(&self, id: &str) -> Vec<u64> {
        self.applied
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Projection for Ledger {
    const NAME: &'static str = "ledger";
    fn accepts(event_type: &str) -> bool {
        event_type == "Noted"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let id = &event.stream.aggregate_id;
        if id == "bad" && BROKEN.load(Ordering::SeqCst) {
            return Err(ProjectionError::Handler(Arc::new(std::io::Error::other(
                "bad is broken",
            ))));
        }
        self.applied.push((id.clone(), event.sequence));
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

async fn note(store: &impl EventStore, id: &str) -> u64 {
    let done = store
        .append(
            &StreamId::new("note", id),
            ExpectedVersion::Any,
            vec![NewEvent::new("Noted", b"{}".to_vec())],
        )
        .await
        .unwrap();
    done.events[0].position
}

async fn start(store: &LmdbStore) -> (Kernel, ProjectionHandle<Ledger>) {
    let kernel = Kernel::builder().store(store.clone()).build().unwrap();
    let ledger = kernel
        .projections()
        .start::<Ledger>(ProjectionOptions::default().error_policy(ErrorPolicy::park()))
        .await
        .unwrap();
    (kernel, ledger)
}

/// Parks three events of `note/bad` beside two good ones; returns the parked positions.
async fn park_three(dir: &Path) -> Vec<u64> {
    let store = LmdbStore::open(dir).unwrap();
    let (kernel, ledger) = start(&store).await;
    let mut parked = Vec::new();
    note(&store, "good").await;
    for _ in 0..3 {
        parked.push(note(&store, "bad").await);
    }
    let last = note(&store, "good").await;
    ledger.wait_for(last).await.unwrap();
    kernel.shutdown().await;
    drop((kernel, ledger));
    store.close().await.unwrap();
    parked
}

#[test]
fn dlq_lists_skips_and_requests_a_retry_the_runner_carries_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let parked = rt().block_on(park_three(&dir));
    let url = lmdb(&dir);

    let listed = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "ledger", "--json"],
        0,
    ));
    assert_eq!(listed.len(), 3);
    for (row, position) in listed.iter().zip(&parked) {
        assert_eq!(row["projection"], "ledger");
        assert_eq!(row["key"], "note/bad");
        assert_eq!(row["position"].as_u64(), Some(*position));
        assert_eq!(row["event_type"], "Noted");
    }
    assert!(
        listed[0]["error"]
            .as_str()
            .unwrap()
            .contains("bad is broken")
    );
    let table = run_ok(&["--store", &url, "dlq", "list"], 0);
    assert!(
        table.contains("note/bad") && table.contains("3 parked without a retry request"),
        "{table}"
    );

    // A copy carries the dead letters along, at their events' positions in the target.
    let copy = file(&tmp.path().join("copy"));
    run_ok(&["--store", &url, "copy", "--to", &copy], 0);
    let copied = parse_lines(&run_ok(
        &["--store", &copy, "dlq", "list", "ledger", "--json"],
        0,
    ));
    assert_eq!(copied, listed);

    // Errors: an unknown position or key, a missing --reason, an unknown projection.
    let p1 = parked[0].to_string();
    let out = run(&[
        "--store", &url, "dlq", "skip", "ledger", "note/bad", "999", "--reason", "x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no event of"), "{}", stderr(&out));
    let out = run(&["--store", &url, "dlq", "skip", "ledger", "note/bad", &p1]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--store", &url, "dlq", "retry", "ledger", "note/good"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--store", &url, "dlq", "list", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("those that have: ledger"),
        "{}",
        stderr(&out)
    );

    let skipped = parse_lines(&run_ok(
        &[
            "--store", &url, "dlq", "skip", "ledger", "note/bad", &p1, "--reason", "bad data",
            "--json",
        ],
        0,
    ));
    assert_eq!(skipped[0]["skipped"], "bad data");
    run_ok(&["--store", &url, "dlq", "retry", "ledger", "note/bad"], 0);
    let listed = parse_lines(&run_ok(&["--store", &url, "dlq", "list", "--json"], 0));
    assert_eq!(listed[0]["skipped"], "bad data");
    assert_eq!(listed[0]["retry_requested"], serde_json::Value::Null);
    assert_eq!(listed[1]["retry_requested"], true);
    assert_eq!(listed[2]["retry_requested"], true);

    // The fix is deployed: the runner, started again, re-runs the two parked events in order.
    BROKEN.store(false, Ordering::SeqCst);
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        let (kernel, ledger) = start(&store).await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while ledger.status().dead_letters > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the requested retry ran");
        assert_eq!(ledger.state().await.of("bad"), [2, 3]);
        assert_eq!(ledger.state().await.of("good"), [1, 2]);
        kernel.shutdown().await;
        drop((kernel, ledger));
        store.close().await.unwrap();
    });
    let listed = parse_lines(&run_ok(&["--store", &url, "dlq", "list", "--json"], 0));
    assert_eq!(
        listed.len(),
        1,
        "only the skipped record is left: {listed:?}"
    );
    assert_eq!(listed[0]["skipped"], "bad data");
}

/// A POST of `body` as JSON; the status and the answer's JSON.
async fn post_json(base: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// The dead letters the console lists.
async fn console_letters(base: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{base}/api/projections/ledger/dead-letters"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

#[test]
fn the_console_lists_dead_letters_and_retries_or_skips_them_only_with_allow_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    rt().block_on(async {
        let parked = park_three(&dir).await;
        let opened = es_stores::OpenedStore::open(&lmdb(&dir), &es_stores::OpenOptions::default())
            .await
            .unwrap();
        for allow_writes in [false, true] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(es_cli::serve::serve_with(
                opened.clone(),
                listener,
                async {
                    let _ = stopped.await;
                },
                es_cli::serve::ServeOptions { allow_writes },
            ));
            let page = console_letters(&base).await;
            assert_eq!(page["writable"], allow_writes);
            let letters = page["dead_letters"].as_array().unwrap();
            let positions: Vec<u64> = letters
                .iter()
                .map(|l| l["position"].as_u64().unwrap())
                .collect();
            assert_eq!(positions, parked);
            assert!(letters.iter().all(|l| l["key"] == "note/bad"));

            let skip = serde_json::json!({"key": "note/bad", "position": parked[0], "reason": "bad input"});
            let (status, _) = post_json(&base, "/api/projections/ledger/skip", &skip).await;
            let retry = serde_json::json!({"key": "note/bad"});
            let (retry_status, retried) =
                post_json(&base, "/api/projections/ledger/retry", &retry).await;
            let after = console_letters(&base).await;
            let after = after["dead_letters"].as_array().unwrap();
            if allow_writes {
                assert_eq!((status, retry_status), (200, 200));
                assert_eq!(after[0]["skipped"], "bad input");
                assert_eq!(retried["retry_requested"], 2, "the two not skipped");
                assert!(after[1..].iter().all(|l| l["retry_requested"] == true));
                // A skip without a reason is refused and changes nothing.
                let no_reason = serde_json::json!({"key": "note/bad", "position": parked[1], "reason": " "});
                let (status, answer) =
                    post_json(&base, "/api/projections/ledger/skip", &no_reason).await;
                assert_eq!(status, 400);
                assert!(answer["error"].as_str().unwrap().contains("reason"), "{answer}");
            } else {
                // No route writes: nothing changed.
                assert_eq!((status, retry_status), (404, 404));
                assert!(
                    after
                        .iter()
                        .all(|l| l["skipped"].is_null() && l["retry_requested"] != true)
                );
            }
            stop.send(()).unwrap();
            server.await.unwrap().unwrap();
        }
    });
}
