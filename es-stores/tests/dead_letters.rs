//! The dead-letter queue of `ErrorPolicy::Park`, through the kernel's public API, on the memory
//! store and on LMDB (reopened): a failing stream's events are parked in order while other
//! streams go on; `retry` applies them in order exactly once after the handler is fixed; `skip`
//! drops one and keeps its reason; the parked records survive a restart.
#![cfg(feature = "lmdb")]
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use es_core::prelude::*;
use es_core::projection::{DeadLetter, ErrorPolicy, ProjectionError, ProjectionHandle};
use es_core::store::Store;
use es_stores::LmdbStore;
use serde::{Deserialize, Serialize};

/// Streams (aggregate ids) whose events the handler fails on while they are listed here. Each
/// test uses its own ids.
static FAILING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn fail(id: &str, on: bool) {
    let mut failing = FAILING.lock().unwrap();
    if on {
        failing.insert(id.to_owned());
    } else {
        failing.remove(id);
    }
}

/// Every event applied, as (stream id, sequence), in the order applied; persisted.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
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
        if FAILING.lock().unwrap().contains(id) {
            return Err(ProjectionError::Handler(Arc::new(std::io::Error::other(
                format!("{id} is broken"),
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

/// Appends one `Noted` event to stream `note/{id}`; returns its position.
async fn note(store: &impl EventStore, id: &str) -> u64 {
    let stream = StreamId::new("note", id);
    let done = store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::new("Noted", b"{}".to_vec())],
        )
        .await
        .unwrap();
    done.events[0].position
}

fn kernel<S: Store + Clone>(store: &S) -> Kernel {
    Kernel::builder().store(store.clone()).build().unwrap()
}

async fn start(kernel: &Kernel) -> ProjectionHandle<Ledger> {
    kernel
        .projections()
        .start::<Ledger>(ProjectionOptions::default().error_policy(ErrorPolicy::park()))
        .await
        .unwrap()
}

fn key(id: &str) -> String {
    format!("note/{id}")
}

fn positions(letters: &[DeadLetter], id: &str) -> Vec<u64> {
    letters
        .iter()
        .filter(|l| l.key == key(id) && l.is_parked())
        .map(|l| l.position)
        .collect()
}

/// The scenario of the module docs' first two points, on `store`.
async fn parks_in_order_and_retries_once<S: Store + Clone>(store: S, tag: &str) {
    let (good, bad) = (format!("good-{tag}"), format!("bad-{tag}"));
    fail(&bad, true);
    let k = kernel(&store);
    let ledger = start(&k).await;
    let mut parked = Vec::new();
    note(&store, &good).await;
    parked.push(note(&store, &bad).await);
    note(&store, &good).await;
    parked.push(note(&store, &bad).await);
    parked.push(note(&store, &bad).await);
    let last = note(&store, &good).await;
    ledger.wait_for(last).await.unwrap();

    // The other stream went on; the failing one is parked, in order.
    let state = ledger.state().await;
    assert_eq!(state.of(&good), [1, 2, 3]);
    assert!(state.of(&bad).is_empty());
    let letters = k.projections().dead_letters("ledger").await.unwrap();
    assert_eq!(positions(&letters, &bad), parked);
    assert!(letters[0].error.contains("is broken"), "{letters:?}");
    assert_eq!(
        letters[1].error,
        format!("parked behind position {}", parked[0])
    );
    assert_eq!(ledger.status().dead_letters, 3);

    // A retry while the handler still fails applies nothing and keeps them all.
    let again = k.projections().retry("ledger", &key(&bad)).await;
    assert!(again.is_err(), "{again:?}");
    assert!(ledger.state().await.of(&bad).is_empty());
    assert_eq!(
        positions(&k.projections().dead_letters("ledger").await.unwrap(), &bad),
        parked
    );

    // A later event of the parked stream waits behind them.
    parked.push(note(&store, &bad).await);
    ledger.wait_for(parked[3]).await.unwrap();
    assert_eq!(ledger.status().dead_letters, 4);

    // Fixed: the retry applies them in order, once.
    fail(&bad, false);
    let applied = k.projections().retry("ledger", &key(&bad)).await.unwrap();
    assert_eq!(applied, 4);
    assert_eq!(ledger.state().await.of(&bad), [1, 2, 3, 4]);
    assert!(
        k.projections()
            .dead_letters("ledger")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ledger.status().dead_letters, 0);
    let nothing = k.projections().retry("ledger", &key(&bad)).await;
    assert!(
        matches!(nothing, Err(ProjectionError::DeadLetters { .. })),
        "{nothing:?}"
    );

    // Now the stream flows again.
    let next = note(&store, &bad).await;
    ledger.wait_for(next).await.unwrap();
    assert_eq!(ledger.state().await.of(&bad), [1, 2, 3, 4, 5]);
    k.shutdown().await;
}

#[tokio::test]
async fn memory_parks_a_failing_stream_in_order_and_a_retry_applies_it_once() {
    parks_in_order_and_retries_once(MemoryStore::new(), "mem").await;
}

#[tokio::test]
async fn lmdb_parks_a_failing_stream_in_order_and_a_retry_applies_it_once() {
    let dir = tempfile::tempdir().unwrap();
    parks_in_order_and_retries_once(LmdbStore::open(dir.path()).unwrap(), "lmdb").await;
}

#[tokio::test]
async fn skip_drops_one_parked_event_and_keeps_its_reason() {
    let store = MemoryStore::new();
    let bad = "bad-skip";
    fail(bad, true);
    let k = kernel(&store);
    let ledger = start(&k).await;
    let first = note(&store, bad).await;
    let second = note(&store, bad).await;
    ledger.wait_for(second).await.unwrap();

    let missing = k.projections().skip("ledger", &key(bad), 999, "no").await;
    assert!(
        matches!(missing, Err(ProjectionError::DeadLetters { .. })),
        "{missing:?}"
    );
    k.projections()
        .skip("ledger", &key(bad), first, "bad data")
        .await
        .unwrap();
    let letters = k.projections().dead_letters("ledger").await.unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].position, first);
    assert_eq!(letters[0].skipped.as_deref(), Some("bad data"));
    assert_eq!(positions(&letters, bad), [second]);
    assert_eq!(ledger.status().dead_letters, 1);

    fail(bad, false);
    assert_eq!(k.projections().retry("ledger", &key(bad)).await.unwrap(), 1);
    assert_eq!(ledger.state().await.of(bad), [2]);
    // The skipped record stays, with its reason.
    let letters = k.projections().dead_letters("ledger").await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].skipped.as_deref(), Some("bad data"));
    k.shutdown().await;
}

#[tokio::test]
async fn parked_events_survive_a_restart_on_a_reopened_lmdb_store() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "bad-restart";
    let good = "good-restart";
    fail(bad, true);
    let (first, second) = {
        let store = LmdbStore::options()
            .map_size(1 << 24)
            .open(dir.path())
            .unwrap();
        let k = kernel(&store);
        let ledger = start(&k).await;
        let first = note(&store, bad).await;
        let second = note(&store, bad).await;
        let last = note(&store, good).await;
        ledger.wait_for(last).await.unwrap();
        k.shutdown().await;
        (first, second)
    };

    // A fresh store handle (another map size proves it is not the earlier one still open).
    let store = LmdbStore::options()
        .map_size(1 << 25)
        .open(dir.path())
        .unwrap();
    assert_eq!(store.map_size(), 1 << 25);
    let k = kernel(&store);
    // Listed from the checkpoint before any runner starts.
    let letters = k.projections().dead_letters("ledger").await.unwrap();
    assert_eq!(positions(&letters, bad), [first, second]);

    let ledger = start(&k).await;
    assert_eq!(ledger.status().dead_letters, 2);
    assert_eq!(ledger.state().await.of(good), [1]);
    let third = note(&store, bad).await;
    ledger.wait_for(third).await.unwrap();
    assert!(ledger.state().await.of(bad).is_empty());

    fail(bad, false);
    assert_eq!(k.projections().retry("ledger", &key(bad)).await.unwrap(), 3);
    assert_eq!(ledger.state().await.of(bad), [1, 2, 3]);
    k.shutdown().await;
    drop(k);
    drop(ledger);
    drop(store);

    // The retry was saved: nothing parked, the state kept.
    let store = LmdbStore::options()
        .map_size(1 << 26)
        .open(dir.path())
        .unwrap();
    let k = kernel(&store);
    assert!(
        k.projections()
            .dead_letters("ledger")
            .await
            .unwrap()
            .is_empty()
    );
    let ledger = start(&k).await;
    assert_eq!(ledger.state().await.of(bad), [1, 2, 3]);
    k.shutdown().await;
}

#[tokio::test]
async fn a_checkpoint_without_dead_letters_keeps_the_plain_state_format() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let ledger = start(&k).await;
    // Without parked events the checkpoint keeps the plain state format.
    let at = note(&store, "plain").await;
    ledger.wait_for(at).await.unwrap();
    k.projections().stop("ledger").await.unwrap();
    let checkpoint = store.load("ledger").await.unwrap().unwrap();
    let state: Ledger = serde_json::from_slice(checkpoint.state.as_deref().unwrap()).unwrap();
    assert_eq!(state.of("plain"), [1]);
    k.shutdown().await;
}

#[tokio::test]
async fn a_runner_without_a_kernel_and_run_once_with_keep_a_parked_stream_in_order() {
    let store = MemoryStore::new();
    let (bad, good) = ("bad-once", "good-once");
    fail(bad, true);
    let options = || {
        ProjectionOptions::default()
            .error_policy(ErrorPolicy::park())
            .checkpoint_store(store.clone())
    };
    let handle = es_core::projection::spawn::<Ledger>(store.clone(), options())
        .await
        .unwrap();
    let first = note(&store, bad).await;
    let last = note(&store, good).await;
    handle.wait_for(last).await.unwrap();
    assert_eq!(positions(&handle.dead_letters(), bad), [first]);
    handle.stop().await.unwrap();

    // Fixed, but a one-shot fold does not apply the stream's next event before the parked one.
    fail(bad, false);
    let second = note(&store, bad).await;
    let (state, at) = es_core::projection::run_once_with::<Ledger>(&store, options())
        .await
        .unwrap();
    assert_eq!(at, second);
    assert!(state.of(bad).is_empty());
    let checkpoint = store.load("ledger").await.unwrap().unwrap();
    let letters = es_core::projection::dead_letters_in(&checkpoint).unwrap();
    assert_eq!(positions(&letters, bad), [first, second]);

    // A retry right after starting (the runner may still be checking that it may run).
    let handle = es_core::projection::spawn::<Ledger>(store.clone(), options())
        .await
        .unwrap();
    assert_eq!(handle.retry(&key(bad)).await.unwrap(), 2);
    assert_eq!(handle.state().await.of(bad), [1, 2]);
    assert!(handle.dead_letters().is_empty());
    handle.stop().await.unwrap();
}
