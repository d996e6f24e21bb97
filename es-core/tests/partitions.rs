//! Partitioned projections through the public API: routing by key, one checkpoint per
//! partition, order per key, refusals, rebuilds that change the number, dead letters per
//! partition, and the `#[projection(partition_by = ...)]` macro argument.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use es_core::event::Recorded;
use es_core::prelude::*;
use es_core::projection::{
    self, CheckpointName, ErrorPolicy, ProjectionError, ProjectionOptions, partition_checkpoint,
    partition_of, partitions_marker,
};
use es_core::{CheckpointStore, Kernel};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// Per stream: how many deposits, and the last position seen; `disorder` counts events seen
/// out of log order (never expected).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct PerKey {
    count: BTreeMap<String, u64>,
    last: BTreeMap<String, u64>,
    disorder: u64,
}

#[projection(name = "per_key", partition_by = "stream")]
impl PerKey {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) -> Result<(), Unlucky> {
        if e.payload.amount == 13 {
            return Err(Unlucky);
        }
        let key = e.stream.to_string();
        if self.last.get(&key).is_some_and(|last| *last >= e.position) {
            self.disorder += 1;
        }
        self.last.insert(key.clone(), e.position);
        *self.count.entry(key).or_default() += 1;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("13 is unlucky")]
struct Unlucky;

/// The same state, keyed by the first letter of the account id.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct ByLetter {
    count: BTreeMap<String, u64>,
}

fn first_letter(event: &RecordedEvent) -> String {
    event.stream.aggregate_id.chars().take(1).collect()
}

#[projection(name = "by_letter", partition_by = first_letter)]
impl ByLetter {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        let letter: String = e.stream.aggregate_id.chars().take(1).collect();
        *self.count.entry(letter).or_default() += 1;
    }
}

/// A total: one value, not partitionable.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Total {
    sum: u64,
}

#[projection(name = "total")]
impl Total {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        self.sum += e.payload.amount;
    }
}

fn kernel(store: &MemoryStore) -> Kernel {
    Kernel::builder().store(store.clone()).build().unwrap()
}

/// Appends `rounds` deposits of 1 to each of `accounts` streams, interleaved; returns the last
/// position.
async fn deposits(store: &MemoryStore, accounts: usize, rounds: usize) -> u64 {
    let mut last = 0;
    for _ in 0..rounds {
        for a in 0..accounts {
            let payload = serde_json::to_vec(&Deposited { amount: 1 }).unwrap();
            let done = store
                .append(
                    &stream(&format!("acc-{a}")),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Deposited", payload)],
                )
                .await
                .unwrap();
            last = done.events[0].position;
        }
    }
    last
}

/// Every partition's state merged: counts summed per key, disorder summed.
fn merged(states: &[PerKey]) -> PerKey {
    let mut all = PerKey::default();
    for state in states {
        for (key, n) in &state.count {
            *all.count.entry(key.clone()).or_default() += n;
        }
        all.last.extend(state.last.clone());
        all.disorder += state.disorder;
    }
    all
}

#[tokio::test]
async fn each_key_is_handled_once_in_order_by_the_partition_it_hashes_to() {
    let store = MemoryStore::new();
    let last = deposits(&store, 20, 5).await;
    let kernel = kernel(&store);
    let options = ProjectionOptions::default().partitions(4).batch_size(7);
    let handle = kernel
        .projections()
        .start::<PerKey>(options.clone())
        .await
        .unwrap();
    handle.wait_for(last).await.unwrap();
    assert_eq!(handle.partitions(), 4);
    let states = handle.partition_states().await;
    for (index, state) in states.iter().enumerate() {
        for key in state.count.keys() {
            assert_eq!(
                partition_of(key, 4) as usize,
                index,
                "{key} in the wrong partition"
            );
        }
    }
    let all = merged(&states);
    assert_eq!(all.count.len(), 20);
    assert!(all.count.values().all(|n| *n == 5), "{:?}", all.count);
    assert_eq!(all.disorder, 0);

    // Each partition saved its own checkpoint at the head, with its own state.
    for index in 0..4 {
        let name = partition_checkpoint("per_key", index, 4);
        let saved = CheckpointStore::load(&store, &name).await.unwrap().unwrap();
        assert_eq!(saved.position, last, "{name}");
        let state: PerKey = serde_json::from_slice(saved.state.as_deref().unwrap()).unwrap();
        assert_eq!(state, states[index as usize]);
    }
    assert!(
        CheckpointStore::load(&store, "per_key")
            .await
            .unwrap()
            .is_none()
    );
    let status = kernel.projections().lookup("per_key").unwrap();
    assert_eq!(status.partitions.len(), 4);
    assert_eq!(status.position, last);
    assert_eq!(status.events_handled, 100);
    assert_eq!(status.partitions[2].name, "per_key#2/4");

    // A restart resumes every partition from its checkpoint: nothing is handled twice.
    kernel.projections().stop("per_key").await.unwrap();
    let more = deposits(&store, 20, 1).await;
    let handle = kernel.projections().start::<PerKey>(options).await.unwrap();
    handle.wait_for(more).await.unwrap();
    let all = merged(&handle.partition_states().await);
    assert!(all.count.values().all(|n| *n == 6), "{:?}", all.count);
    assert_eq!(all.disorder, 0);
    assert_eq!(
        handle
            .state_for("account/acc-3")
            .await
            .count
            .get("account/acc-3"),
        Some(&6)
    );
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_custom_key_routes_by_what_the_function_returns() {
    let store = MemoryStore::new();
    let mut last = 0;
    for id in ["ann", "amy", "bob", "bea", "cy"] {
        let payload = serde_json::to_vec(&Deposited { amount: 1 }).unwrap();
        last = store
            .append(
                &stream(id),
                ExpectedVersion::Any,
                vec![NewEvent::new("Deposited", payload)],
            )
            .await
            .unwrap()
            .events[0]
            .position;
    }
    let kernel = kernel(&store);
    let handle = kernel
        .projections()
        .start::<ByLetter>(ProjectionOptions::default().partitions(3))
        .await
        .unwrap();
    handle.wait_for(last).await.unwrap();
    for (letter, n) in [("a", 2), ("b", 2), ("c", 1)] {
        let state = handle.state_for(letter).await;
        assert_eq!(state.count.get(letter), Some(&n), "{letter}: {state:?}");
    }
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_state_that_is_one_value_cannot_be_partitioned() {
    let store = MemoryStore::new();
    let kernel = kernel(&store);
    let err = kernel
        .projections()
        .start::<Total>(ProjectionOptions::default().partitions(2))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        matches!(err, ProjectionError::Partitions { .. }),
        "{message}"
    );
    assert!(message.contains("one value"), "{message}");
    assert!(message.contains("partition_by"), "{message}");
    // One partition is the projection as it always was.
    kernel
        .projections()
        .start::<Total>(ProjectionOptions::default().partitions(1))
        .await
        .unwrap();
    kernel.shutdown().await;
}

#[tokio::test]
async fn another_number_of_partitions_is_refused_until_a_rebuild() {
    let store = MemoryStore::new();
    let last = deposits(&store, 6, 3).await;
    let kernel = kernel(&store);
    let four = ProjectionOptions::default().partitions(4);
    let handle = kernel
        .projections()
        .start::<PerKey>(four.clone())
        .await
        .unwrap();
    handle.wait_for(last).await.unwrap();
    handle.stop().await.unwrap();

    for other in [1, 2, 8] {
        let err = kernel
            .projections()
            .start::<PerKey>(ProjectionOptions::default().partitions(other))
            .await
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(message.contains("rebuild"), "{message}");
        assert!(message.contains("4 partitions"), "{message}");
    }

    // A rebuild while it runs is refused; stopped, it writes the new partitions.
    let running = kernel.projections().start::<PerKey>(four).await.unwrap();
    let two = ProjectionOptions::default().partitions(2);
    assert!(
        kernel
            .projections()
            .rebuild::<PerKey>(two.clone())
            .await
            .is_err()
    );
    running.stop().await.unwrap();
    assert_eq!(
        kernel
            .projections()
            .rebuild::<PerKey>(two.clone())
            .await
            .unwrap(),
        last
    );
    let marker = CheckpointStore::load(&store, &partitions_marker("per_key"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(marker.position, 2);
    let handle = kernel.projections().start::<PerKey>(two).await.unwrap();
    handle.wait_for(last).await.unwrap();
    let all = merged(&handle.partition_states().await);
    assert!(all.count.values().all(|n| *n == 3), "{:?}", all.count);
    handle.stop().await.unwrap();

    // And back to one partition: the projection's own checkpoint again.
    kernel
        .projections()
        .rebuild::<PerKey>(ProjectionOptions::default())
        .await
        .unwrap();
    let handle = kernel
        .projections()
        .start::<PerKey>(ProjectionOptions::default())
        .await
        .unwrap();
    handle.wait_for(last).await.unwrap();
    assert!(handle.state().await.count.values().all(|n| *n == 3));
    kernel.shutdown().await;
}

#[tokio::test]
async fn an_unpartitioned_checkpoint_is_not_silently_split() {
    let store = MemoryStore::new();
    let last = deposits(&store, 3, 2).await;
    let kernel = kernel(&store);
    let one = kernel
        .projections()
        .start::<PerKey>(ProjectionOptions::default())
        .await
        .unwrap();
    one.wait_for(last).await.unwrap();
    one.stop().await.unwrap();
    let err = kernel
        .projections()
        .start::<PerKey>(ProjectionOptions::default().partitions(3))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("unpartitioned"), "{err}");
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_parked_key_waits_in_its_partition_while_the_others_go_on() {
    let store = MemoryStore::new();
    let kernel = kernel(&store);
    let options = ProjectionOptions::default()
        .partitions(3)
        .error_policy(ErrorPolicy::park());
    let handle = kernel.projections().start::<PerKey>(options).await.unwrap();
    let append = |id: &'static str, amount: u64| {
        let store = store.clone();
        async move {
            let payload = serde_json::to_vec(&Deposited { amount }).unwrap();
            store
                .append(
                    &stream(id),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Deposited", payload)],
                )
                .await
                .unwrap()
                .events[0]
                .position
        }
    };
    let poisoned = append("poisoned", 13).await;
    let behind = append("poisoned", 1).await;
    let mut last = 0;
    for id in ["a", "b", "c", "d", "e"] {
        last = append(id, 1).await;
    }
    handle.wait_for(last).await.unwrap();
    let letters = kernel.projections().dead_letters("per_key").await.unwrap();
    let parked: Vec<u64> = letters.iter().map(|l| l.position).collect();
    assert_eq!(parked, [poisoned, behind]);
    assert_eq!(
        kernel.projections().lookup("per_key").unwrap().dead_letters,
        2
    );
    let all = merged(&handle.partition_states().await);
    assert_eq!(
        all.count.len(),
        5,
        "the other keys went on: {:?}",
        all.count
    );

    // Skipping the poison and retrying the key applies what was parked behind it.
    kernel
        .projections()
        .skip("per_key", "account/poisoned", poisoned, "bad amount")
        .await
        .unwrap();
    assert_eq!(
        kernel
            .projections()
            .retry("per_key", "account/poisoned")
            .await
            .unwrap(),
        1
    );
    let state = handle.state_for("account/poisoned").await;
    assert_eq!(state.count.get("account/poisoned"), Some(&1));
    assert!(
        kernel
            .projections()
            .retry("per_key", "account/nobody")
            .await
            .is_err()
    );
    kernel.shutdown().await;

    // The dead letters were saved in the partition's checkpoint.
    let index = partition_of("account/poisoned", 3);
    let saved = CheckpointStore::load(&store, &partition_checkpoint("per_key", index, 3))
        .await
        .unwrap()
        .unwrap();
    let letters = projection::dead_letters_in(&saved).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].skipped.as_deref(), Some("bad amount"));
}

#[tokio::test]
async fn spawn_runs_partitions_without_a_kernel() {
    let store = MemoryStore::new();
    let last = deposits(&store, 10, 2).await;
    let options = ProjectionOptions::default()
        .checkpoint_store(store.clone())
        .partitions(2);
    let handle = projection::spawn::<PerKey>(store.clone(), options)
        .await
        .unwrap();
    handle.wait_for(last).await.unwrap();
    let all = merged(&handle.partition_states().await);
    assert_eq!(all.count.values().sum::<u64>(), 20);
    handle.stop().await.unwrap();
    assert!(matches!(
        handle.status().phase,
        projection::ProjectionPhase::Stopped { error: None }
    ));
}

proptest! {
    /// The partition of a stream's event is the partition of the stream's name, whatever the
    /// name, and a checkpoint name reads back as what it was made of.
    #[test]
    fn routing_agrees_with_partition_of(
        aggregate_type in "[a-z_]{1,8}",
        id in "\\PC{0,12}",
        partitions in 1u32..64,
    ) {
        let stream = StreamId::new(aggregate_type, id);
        let key = stream.to_string();
        let index = partition_of(&key, partitions);
        prop_assert!(index < partitions);
        let name = partition_checkpoint("p", index, partitions);
        if partitions > 1 {
            prop_assert_eq!(
                CheckpointName::parse(&name),
                CheckpointName::Partition { name: "p", index, partitions }
            );
        } else {
            prop_assert_eq!(CheckpointName::parse(&name), CheckpointName::Plain("p"));
        }
    }
}
