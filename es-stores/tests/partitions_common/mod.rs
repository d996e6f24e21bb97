//! The partitioned projection of the partition crash tests, whose state proves that each
//! stream's events were handled exactly once and in order: per stream, how many events it
//! handled, the last stream sequence it saw, and how many it saw twice or out of order
//! (`repeats`) or after a gap (`gaps`). The state is saved with each partition's checkpoint in
//! one write, so what a crash leaves is what the partition handled up to its checkpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

/// How many partitions the tests run.
pub const PARTITIONS: u32 = 4;
/// How many streams the writers append to.
pub const STREAMS: u64 = 12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Bumped {
    pub n: u64,
}

/// What one partition has seen of one stream.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub count: u64,
    pub last_sequence: u64,
    pub repeats: u64,
    pub gaps: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerStream {
    pub streams: BTreeMap<String, Seen>,
}

#[projection(name = "per_stream", partition_by = "stream")]
impl PerStream {
    #[on]
    fn bumped(&mut self, e: &Recorded<Bumped>) {
        let seen = self.streams.entry(e.stream.to_string()).or_default();
        if e.sequence <= seen.last_sequence {
            seen.repeats += 1;
        } else if e.sequence != seen.last_sequence + 1 {
            seen.gaps += 1;
        }
        seen.last_sequence = seen.last_sequence.max(e.sequence);
        seen.count += 1;
        // Slow enough that a kill lands in the middle of a batch.
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The options the tests run the projection with.
pub fn options() -> ProjectionOptions {
    ProjectionOptions::default()
        .partitions(PARTITIONS)
        .batch_size(16)
        .poll_interval(Duration::from_millis(100))
}

/// The stream of writer `i`.
pub fn stream(i: u64) -> StreamId {
    StreamId::new("counter", format!("s-{i}"))
}

/// Appends to the streams round-robin forever, printing `@@ack stream sequence position` after
/// each append (for `crash_common::run_and_kill`).
pub async fn append_forever(store: impl EventStore + Clone) -> Result<(), String> {
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for round in 0u64.. {
                let i = (round * 3 + w) % STREAMS;
                let payload =
                    serde_json::to_vec(&Bumped { n: round }).map_err(|e| e.to_string())?;
                let done = store
                    .append(
                        &stream(i),
                        ExpectedVersion::Any,
                        vec![NewEvent::new("Bumped", payload)],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let event = &done.events[0];
                let mut out = std::io::stdout().lock();
                writeln!(out, "@@ack {i} {} {}", event.sequence, event.position)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for writer in writers {
        writer.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Checks that `states` (every partition's, merged) handled each stream of `store` exactly
/// once, in order, none skipped, each in the partition its key hashes to.
pub async fn assert_exactly_once(store: &impl EventStore, states: &[PerStream]) {
    let mut merged: BTreeMap<String, Seen> = BTreeMap::new();
    for (index, state) in states.iter().enumerate() {
        for (key, seen) in &state.streams {
            assert_eq!(
                es_core::projection::partition_of(key, PARTITIONS) as usize,
                index,
                "{key} handled by the wrong partition"
            );
            assert!(
                merged.insert(key.clone(), seen.clone()).is_none(),
                "{key} in two partitions"
            );
        }
    }
    for i in 0..STREAMS {
        let stream = stream(i);
        let length = store.stream_version(&stream).await.unwrap();
        let seen = merged.remove(&stream.to_string()).unwrap_or_default();
        assert_eq!(
            seen,
            Seen {
                count: length,
                last_sequence: length,
                repeats: 0,
                gaps: 0
            },
            "{stream}: every event handled exactly once, in order"
        );
    }
    assert!(merged.is_empty(), "unknown streams: {merged:?}");
}
