//! `es projections` and `es dlq` on a projection run in partitions: one row for the projection
//! (lowest position, `partitions: n`) followed by its partitions, the record of the number
//! not listed, dead letters listed under the projection, and a skip that edits the partition
//! holding the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use es_core::prelude::*;
use es_core::projection::{ErrorPolicy, Partitioning, ProjectionError};
use es_stores::LmdbStore;
use serde::{Deserialize, Serialize};

/// Counts events per stream; fails on stream `note/bad`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counts {
    by_stream: std::collections::BTreeMap<String, u64>,
}

impl Projection for Counts {
    const NAME: &'static str = "counts";
    const PARTITIONING: Partitioning = Partitioning::ByStream;
    fn accepts(event_type: &str) -> bool {
        event_type == "Noted"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.stream.aggregate_id == "bad" {
            return Err(ProjectionError::Handler(Arc::new(std::io::Error::other(
                "bad is broken",
            ))));
        }
        *self.by_stream.entry(event.stream.to_string()).or_default() += 1;
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

#[test]
fn partitions_are_listed_under_their_projection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let bad_position = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = LmdbStore::open(&dir).unwrap();
            let kernel = Kernel::builder().store(store.clone()).build().unwrap();
            let handle = kernel
                .projections()
                .start::<Counts>(
                    ProjectionOptions::default()
                        .partitions(3)
                        .error_policy(ErrorPolicy::park()),
                )
                .await
                .unwrap();
            let mut last = 0;
            let mut bad = 0;
            for id in ["a", "b", "bad", "c", "d"] {
                last = store
                    .append(
                        &StreamId::new("note", id),
                        ExpectedVersion::Any,
                        vec![NewEvent::new("Noted", b"{}".to_vec())],
                    )
                    .await
                    .unwrap()
                    .events[0]
                    .position;
                if id == "bad" {
                    bad = last;
                }
            }
            handle.wait_for(last).await.unwrap();
            kernel.shutdown().await;
            bad
        });
    let url = lmdb(&dir);

    let rows = parse_lines(&run_ok(&["--store", &url, "projections", "--json"], 0));
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["counts", "counts#0/3", "counts#1/3", "counts#2/3"]);
    assert_eq!(rows[0]["partitions"].as_u64(), Some(3));
    assert_eq!(rows[0]["kind"], "projection");
    assert_eq!(rows[1]["kind"], "partition");
    assert_eq!(rows[0]["position"].as_u64(), Some(5));

    let letters = parse_lines(&run_ok(&["--store", &url, "dlq", "list", "--json"], 0));
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["projection"], "counts");
    assert_eq!(letters[0]["key"], "note/bad");
    let position = bad_position.to_string();
    run_ok(
        &[
            "--store", &url, "dlq", "skip", "counts", "note/bad", &position, "--reason", "bad",
        ],
        0,
    );
    let letters = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "counts", "--json"],
        0,
    ));
    assert_eq!(letters[0]["skipped"], "bad");
}
