//! When a process manager's deadline fires among its instance's events: once the runner has
//! handled every event stamped before its due time, whatever the clock says and wherever the
//! pages of the log end, so that handling the log again after a restart fires it at the same
//! point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::clock::ManualClock;
use es_core::prelude::*;
use es_core::process::CHECKPOINT_PREFIX;
use serde::{Deserialize, Serialize};

/// Starts an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Began;
/// Continues one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Nudged;
/// The deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Late;

/// Writes down what it saw, in order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Watch {
    seen: Vec<String>,
}

#[process_manager(name = "watch")]
impl Watch {
    #[on(start)]
    fn began(&mut self, _: &Recorded<Began>, out: &mut Commands) {
        self.seen.push("began".into());
        out.schedule(Duration::from_secs(30), Late);
    }
    #[on]
    fn nudged(&mut self, e: &Recorded<Nudged>, _: &mut Commands) {
        self.seen
            .push(format!("nudged at {}", e.timestamp.timestamp()));
    }
    #[on(deadline)]
    fn late(&mut self, _: &Late, _: &mut Commands) {
        self.seen.push("late".into());
    }
}

/// Appends `event` to a stream of its own, in instance `key`, stamped `at` seconds after the
/// epoch.
async fn append<E: Event>(store: &MemoryStore, key: &str, at: i64, event: E) {
    let stamp = DateTime::<Utc>::from_timestamp(at, 0).unwrap();
    let new = NewEvent::new(E::NAME, event.encode_payload().unwrap())
        .correlation_id(key)
        .timestamp(stamp);
    let stream = StreamId::new("thing", format!("{key}-{at}"));
    store
        .append(&stream, ExpectedVersion::NoStream, vec![new])
        .await
        .unwrap();
}

/// What instance `key` saw, from the checkpoint the runner saved.
async fn seen(store: &MemoryStore, key: &str) -> Vec<String> {
    let name = format!("{CHECKPOINT_PREFIX}watch");
    let checkpoint = CheckpointStore::load(store, &name).await.unwrap().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&checkpoint.state.unwrap()).unwrap();
    serde_json::from_value(state["instances"][key]["seen"].clone()).unwrap()
}

#[tokio::test]
async fn a_deadline_fires_between_the_events_stamped_before_and_after_its_due_time() {
    for batch in [1, 2, 100] {
        let store = MemoryStore::new();
        append(&store, "k", 0, Began).await;
        append(&store, "k", 10, Nudged).await;
        append(&store, "other", 20, Began).await;
        append(&store, "k", 40, Nudged).await;
        append(&store, "k", 50, Nudged).await;
        // The clock stays at the epoch: the log's stamps alone decide.
        let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
        let kernel = Kernel::builder()
            .store(store.clone())
            .clock(clock)
            .build()
            .unwrap();
        let watch = kernel
            .process_managers()
            .start::<Watch>(ProjectionOptions::default().batch_size(batch))
            .await
            .unwrap();
        watch.wait_for(5).await.unwrap();
        kernel.shutdown().await;
        assert_eq!(
            seen(&store, "k").await,
            [
                "began",
                "nudged at 10",
                "late",
                "nudged at 40",
                "nudged at 50"
            ],
            "batches of {batch}"
        );
        // `other`'s deadline (due at 50) fell due by the last event's stamp too.
        assert_eq!(
            seen(&store, "other").await,
            ["began", "late"],
            "batches of {batch}"
        );
        assert_eq!(watch.status().deadlines_fired, 2);
        assert_eq!(watch.pending_deadlines(), 0);
    }
}
