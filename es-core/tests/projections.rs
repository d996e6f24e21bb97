//! Projections through the public API: run_once, managed runners, checkpoints, error policies.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use es_core::event::Recorded;
use es_core::prelude::*;
use es_core::projection::{
    self, ErrorPolicy, HandlerOutcome, ProjectionError, ProjectionOptions, ProjectionPhase,
};
use es_core::{CheckpointStore, Kernel, StoreError};
use serde::{Deserialize, Serialize};

/// Balances per account, persisted with its checkpoint.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Balances {
    by_account: BTreeMap<String, i64>,
}

impl Projection for Balances {
    const NAME: &'static str = "balances";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited" || event_type == "Withdrawn"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let entry = self
            .by_account
            .entry(event.stream.aggregate_id.clone())
            .or_default();
        match event.event_type.as_str() {
            "Deposited" => *entry += Recorded::<Deposited>::decode(event)?.payload.amount as i64,
            _ => *entry -= Recorded::<Withdrawn>::decode(event)?.payload.amount as i64,
        }
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

static TALLY_HANDLED: AtomicUsize = AtomicUsize::new(0);

/// Total deposited, persisted; counts how many events it handled (used by one test only).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tally {
    total: u64,
}

impl Projection for Tally {
    const NAME: &'static str = "tally";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        TALLY_HANDLED.fetch_add(1, Ordering::SeqCst);
        self.total += Recorded::<Deposited>::decode(event)?.payload.amount;
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

/// Counts deposits; fails on deposits of 13.
#[derive(Debug, Default, Clone)]
struct Unlucky {
    deposits: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("13 is unlucky")]
struct UnluckyError;

impl Projection for Unlucky {
    const NAME: &'static str = "unlucky";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let e = Recorded::<Deposited>::decode(event)?;
        if e.payload.amount == 13 {
            return Err(UnluckyError).into_outcome();
        }
        self.deposits += 1;
        Ok(())
    }
}

fn kernel(store: MemoryStore) -> Kernel {
    Kernel::builder()
        .store(store)
        .register::<Account>()
        .build()
        .unwrap()
}

/// A kernel whose log holds deposits of 1, 13 (the one `Unlucky` and `Panicky` choke on) and 2;
/// returns it with the positions of the bad deposit and of the last one.
async fn one_bad_deposit_between_two_good_ones() -> (Kernel, u64, u64) {
    let k = kernel(MemoryStore::new());
    deposit(&k, "a", 1).await;
    let bad = deposit(&k, "a", 13).await;
    let after = deposit(&k, "a", 2).await;
    (k, bad, after)
}

async fn deposit(k: &Kernel, id: &str, amount: u64) -> u64 {
    let done = k
        .dispatch::<Account>(id, AccountCommand::Deposit(amount))
        .await
        .unwrap();
    done.events.last().unwrap().position
}

#[tokio::test]
async fn run_once_equals_a_fold_over_all_events() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 10).await;
    deposit(&k, "b", 3).await;
    k.dispatch::<Account>("a", AccountCommand::Withdraw(4))
        .await
        .unwrap();
    let balances: Balances = projection::run_once(&store).await.unwrap();
    assert_eq!(
        balances.by_account,
        BTreeMap::from([("a".into(), 6), ("b".into(), 3)])
    );
}

#[tokio::test]
async fn filters_never_decode_foreign_events() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 10).await;
    // A foreign event whose payload is not JSON at all.
    store
        .append(
            &StreamId::new("other", "x"),
            ExpectedVersion::Any,
            vec![NewEvent::new("Foreign", b"\xff\x00 not json".to_vec())],
        )
        .await
        .unwrap();
    let last = deposit(&k, "a", 1).await;
    let balances: Balances = projection::run_once(&store).await.unwrap();
    assert_eq!(balances.by_account["a"], 11);
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(
        h.position(),
        last,
        "skipped events still advance the position"
    );
}

#[tokio::test]
async fn a_live_runner_gives_read_your_writes() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 1).await;
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    for i in 0..50u64 {
        let position = deposit(&k, "a", i).await;
        tokio::time::timeout(Duration::from_secs(5), h.wait_for(position))
            .await
            .unwrap()
            .unwrap();
        let state = h.state().await;
        assert_eq!(state.by_account["a"], 1 + (0..=i).sum::<u64>() as i64);
    }
    let status = k.projections().lookup("balances").unwrap();
    assert_eq!(status.position, store.head_position().await.unwrap());
    k.shutdown().await;
}

#[tokio::test]
async fn a_restarted_runner_resumes_from_its_checkpoint() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut last = 0;
    for i in 0..20 {
        last = deposit(&k, &format!("acc-{}", i % 3), 1).await;
    }
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default().batch_size(7))
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    k.projections().stop("balances").await.unwrap();
    let saved = CheckpointStore::load(&store, "balances")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.position, last);
    assert!(
        saved.state.is_some(),
        "the state is saved with the checkpoint"
    );
    for _ in 0..5 {
        last = deposit(&k, "acc-0", 1).await;
    }
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    let state = h.state().await;
    assert_eq!(
        state.by_account.values().sum::<i64>(),
        25,
        "the restored state plus new events"
    );
    assert_eq!(state.by_account["acc-0"], 7 + 5);
}

#[tokio::test]
async fn a_restart_handles_only_events_after_the_checkpoint() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut last = 0;
    for _ in 0..10 {
        last = deposit(&k, "t", 2).await;
    }
    let h = k
        .projections()
        .start::<Tally>(ProjectionOptions::default().batch_size(3))
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    k.projections().stop("tally").await.unwrap();
    assert_eq!(TALLY_HANDLED.load(Ordering::SeqCst), 10);
    for _ in 0..4 {
        last = deposit(&k, "t", 1).await;
    }
    let h = k
        .projections()
        .start::<Tally>(ProjectionOptions::default())
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(
        TALLY_HANDLED.load(Ordering::SeqCst),
        14,
        "only the 4 new events were handled"
    );
    assert_eq!(h.state().await.total, 24);
}

#[tokio::test]
async fn the_stop_policy_stops_and_reports_where() {
    let (k, bad, after) = one_bad_deposit_between_two_good_ones().await;
    let h = k
        .projections()
        .start::<Unlucky>(ProjectionOptions::default())
        .await
        .unwrap();
    let err = h.wait_for(after).await.unwrap_err();
    assert!(matches!(err, ProjectionError::Stopped { .. }), "{err}");
    let status = k.projections().lookup("unlucky").unwrap();
    assert_eq!(
        status.position,
        bad - 1,
        "stopped after the last good event"
    );
    match status.phase {
        ProjectionPhase::Stopped { error: Some(e) } => {
            assert!(
                e.contains("13 is unlucky") && e.contains(&format!("position {bad}")),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A stopped runner may be started again; it stops at the same place.
    let h = k
        .projections()
        .start::<Unlucky>(ProjectionOptions::default())
        .await
        .unwrap();
    assert!(h.wait_for(after).await.is_err());
}

#[tokio::test]
async fn the_skip_policy_records_and_goes_on() {
    let (k, bad, after) = one_bad_deposit_between_two_good_ones().await;
    let h = k
        .projections()
        .start::<Unlucky>(ProjectionOptions::default().error_policy(ErrorPolicy::Skip))
        .await
        .unwrap();
    h.wait_for(after).await.unwrap();
    assert_eq!(h.state().await.deposits, 2);
    let status = h.status();
    assert_eq!(status.skipped_count, 1);
    assert_eq!(status.skipped[0].position, bad);
    assert!(status.skipped[0].error.contains("unlucky"));
}

#[tokio::test]
async fn the_retry_policy_retries_with_backoff_then_stops() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 13).await;
    let started = tokio::time::Instant::now();
    let h = k
        .projections()
        .start::<Unlucky>(
            ProjectionOptions::default().error_policy(ErrorPolicy::Retry {
                attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(25),
            }),
        )
        .await
        .unwrap();
    let err = h.wait_for(1).await.unwrap_err();
    // 10 + 20 + 25 ms of backoff before giving up.
    assert!(
        started.elapsed() >= Duration::from_millis(55),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("after 3 retries"), "{err}");
}

/// A different projection that claims `Balances`'s name.
#[derive(Debug, Default)]
struct Impostor;

impl Projection for Impostor {
    const NAME: &'static str = "balances";
    fn accepts(_: &str) -> bool {
        false
    }
    fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
        Ok(())
    }
}

#[tokio::test]
async fn two_projections_side_by_side_and_lookup() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let a = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    let b = k
        .projections()
        .start::<Unlucky>(ProjectionOptions::default().error_policy(ErrorPolicy::Skip))
        .await
        .unwrap();
    // Starting a running projection again hands back the running one.
    let again = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    // Another projection type under a running projection's name is refused.
    assert!(matches!(
        k.projections()
            .start::<Impostor>(ProjectionOptions::default())
            .await,
        Err(ProjectionError::AlreadyRunning(_))
    ));
    let mut last = 0;
    for i in 0..30 {
        last = deposit(&k, &format!("x{}", i % 4), 2).await;
    }
    a.wait_for(last).await.unwrap();
    b.wait_for(last).await.unwrap();
    assert_eq!(a.state().await.by_account.values().sum::<i64>(), 60);
    assert_eq!(again.state().await, a.state().await);
    assert_eq!(again.position(), a.position());
    assert_eq!(b.state().await.deposits, 30);
    let mut names = k.projections().names();
    names.sort();
    assert_eq!(names, vec!["balances", "unlucky"]);
    k.projections().stop("balances").await.unwrap();
    assert_eq!(
        k.projections().lookup("balances").map(|s| s.phase),
        Some(ProjectionPhase::Stopped { error: None })
    );
    assert!(matches!(
        k.projections().lookup("unlucky").map(|s| s.phase),
        Some(ProjectionPhase::CaughtUp | ProjectionPhase::Running)
    ));
    assert!(k.projections().lookup("nope").is_none());
    assert!(matches!(
        k.projections().stop("nope").await,
        Err(ProjectionError::NotFound(_))
    ));
}

#[tokio::test]
async fn start_position_overrides_the_checkpoint() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 100).await;
    let last = deposit(&k, "a", 1).await;
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default().start_position(2))
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(h.state().await.by_account["a"], 1);
}

/// Panics on a deposit of 13, in the handler itself (no `Result`), as buggy user code does.
#[derive(Debug, Default, Clone)]
struct Panicky {
    deposits: u64,
}

impl Projection for Panicky {
    const NAME: &'static str = "panicky";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let e = Recorded::<Deposited>::decode(event)?;
        assert_ne!(e.payload.amount, 13, "the handler chokes on 13");
        self.deposits += 1;
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_handler_stops_the_runner_with_the_panic_message_under_the_stop_policy() {
    let (k, bad, after) = one_bad_deposit_between_two_good_ones().await;
    let h = k
        .projections()
        .start::<Panicky>(ProjectionOptions::default())
        .await
        .unwrap();
    // `wait_for` returns (it used to hang for good), with the stop.
    let err = tokio::time::timeout(Duration::from_secs(10), h.wait_for(after))
        .await
        .expect("wait_for must not hang after a panic")
        .unwrap_err();
    assert!(matches!(err, ProjectionError::Stopped { .. }), "{err}");
    let status = k.projections().lookup("panicky").unwrap();
    assert_eq!(
        status.position,
        bad - 1,
        "stopped after the last good event"
    );
    match status.phase {
        ProjectionPhase::Stopped { error: Some(e) } => assert!(
            e.contains("handler panicked") && e.contains("the handler chokes on 13"),
            "{e}"
        ),
        other => panic!("lookup must say Stopped, got {other:?}"),
    }
    // `stop` on the stopped runner is fine and `lookup` still says Stopped; a new start runs
    // again (and stops at the same event).
    k.projections().stop("panicky").await.unwrap();
    assert!(matches!(
        k.projections().lookup("panicky").unwrap().phase,
        ProjectionPhase::Stopped { .. }
    ));
    let h = k
        .projections()
        .start::<Panicky>(ProjectionOptions::default())
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), h.wait_for(after))
        .await
        .expect("wait_for must not hang after a panic");
    assert!(again.is_err());
}

#[tokio::test]
async fn a_panicking_handler_is_skipped_and_recorded_under_the_skip_policy() {
    let (k, bad, after) = one_bad_deposit_between_two_good_ones().await;
    let h = k
        .projections()
        .start::<Panicky>(ProjectionOptions::default().error_policy(ErrorPolicy::Skip))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), h.wait_for(after))
        .await
        .expect("wait_for must not hang after a panic")
        .unwrap();
    assert_eq!(h.state().await.deposits, 2);
    let status = h.status();
    assert_eq!(status.skipped_count, 1);
    assert_eq!(status.skipped[0].position, bad);
    assert!(
        status.skipped[0].error.contains("the handler chokes on 13"),
        "{}",
        status.skipped[0].error
    );
    assert!(matches!(
        status.phase,
        ProjectionPhase::CaughtUp | ProjectionPhase::Running
    ));
}

#[tokio::test]
async fn a_panicking_handler_is_retried_then_stops_under_the_retry_policy() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 13).await;
    let h = k
        .projections()
        .start::<Panicky>(
            ProjectionOptions::default().error_policy(ErrorPolicy::Retry {
                attempts: 2,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(10),
            }),
        )
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), h.wait_for(1))
        .await
        .expect("wait_for must not hang after a panic")
        .unwrap_err();
    assert!(err.to_string().contains("after 2 retries"), "{err}");
}

#[tokio::test]
async fn run_once_reports_a_panicking_handler_as_an_error() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 1).await;
    deposit(&k, "a", 13).await;
    let err = projection::run_once::<Panicky>(&store).await.unwrap_err();
    assert!(
        err.to_string().contains("the handler chokes on 13"),
        "{err}"
    );
}

#[test]
fn a_runner_whose_runtime_goes_away_is_reported_stopped() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let k = rt.block_on(async {
        let k = kernel(MemoryStore::new());
        deposit(&k, "a", 1).await;
        k.projections()
            .start::<Panicky>(ProjectionOptions::default())
            .await
            .unwrap();
        k
    });
    drop(rt);
    match k.projections().lookup("panicky").unwrap().phase {
        ProjectionPhase::Stopped { error: Some(e) } => {
            assert!(e.contains("ended unexpectedly"), "{e}")
        }
        other => panic!("a runner whose task is gone must not say {other:?}"),
    }
}

/// Counts deposits slowly (1 ms each, as a handler doing real work), persisting its count.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Slow {
    deposits: u64,
}

impl Projection for Slow {
    const NAME: &'static str = "slow";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, _: &RecordedEvent) -> Result<(), ProjectionError> {
        std::thread::sleep(Duration::from_millis(1));
        self.deposits += 1;
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_honoured_inside_a_large_batch_and_nothing_is_handled_twice() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let mut last = 0;
    for i in 0..2_000u64 {
        last = deposit(&k, &format!("a{}", i % 10), 1).await;
    }
    // One batch holds every event: without a check between events, stop would wait ~2 s.
    let options = || ProjectionOptions::default().batch_size(10_000);
    let h = k.projections().start::<Slow>(options()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let asked = std::time::Instant::now();
    k.projections().stop("slow").await.unwrap();
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_millis(1_000),
        "stop waited {waited:?}"
    );
    assert!(matches!(
        k.projections().lookup("slow").unwrap().phase,
        ProjectionPhase::Stopped { error: None }
    ));
    let saved = CheckpointStore::load(&store, "slow")
        .await
        .unwrap()
        .unwrap();
    assert!(
        saved.position > 0 && saved.position < last,
        "the work done before the stop is saved: {}",
        saved.position
    );
    assert_eq!(h.position(), saved.position);
    // A restart resumes from that checkpoint and handles every event exactly once in all.
    let h = k.projections().start::<Slow>(options()).await.unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(h.state().await.deposits, 2_000);
}

/// A checkpoint store whose next saves fail with an unknown outcome, as a lost connection does.
#[derive(Clone, Default)]
struct LosingCheckpoints {
    inner: MemoryStore,
    fail_next: std::sync::Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl CheckpointStore for LosingCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<es_core::store::Checkpoint>, StoreError> {
        CheckpointStore::load(&self.inner, name).await
    }
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Indeterminate(
                "test double: connection lost during the save".into(),
            ));
        }
        CheckpointStore::save(&self.inner, name, position, state).await
    }
}

#[tokio::test]
async fn a_checkpoint_save_that_loses_its_connection_is_retried() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    deposit(&k, "a", 1).await;
    let last = deposit(&k, "a", 2).await;
    let checkpoints = LosingCheckpoints::default();
    checkpoints.fail_next.store(3, Ordering::SeqCst);
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default().checkpoint_store(checkpoints.clone()))
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(h.state().await.by_account["a"], 3);
    let saved = CheckpointStore::load(&checkpoints, "balances")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.position, last);
    assert_eq!(checkpoints.fail_next.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_checkpoint_store_that_keeps_failing_stops_the_runner_and_says_why() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let last = deposit(&k, "a", 1).await;
    let checkpoints = LosingCheckpoints::default();
    checkpoints.fail_next.store(usize::MAX, Ordering::SeqCst);
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default().checkpoint_store(checkpoints))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), h.wait_for(last))
        .await
        .expect("the runner gives up after its attempts")
        .unwrap_err();
    assert!(err.to_string().contains("after 10 attempts"), "{err}");
}

/// What `Scaled` multiplies each deposit by: its "code", which a rebuild picks up.
static SCALE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Deposits times [`SCALE`], persisted.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Scaled {
    total: u64,
    events: u64,
}

impl Projection for Scaled {
    const NAME: &'static str = "scaled";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let amount = Recorded::<Deposited>::decode(event)?.payload.amount;
        self.total += amount * SCALE.load(Ordering::SeqCst);
        self.events += 1;
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_swaps_in_a_fresh_state_while_events_keep_coming() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    SCALE.store(1, Ordering::SeqCst);
    let mut last = 0;
    for i in 0..2000u64 {
        last = deposit(&k, &format!("a{}", i % 7), 1).await;
    }
    let h = k
        .projections()
        .start::<Scaled>(ProjectionOptions::default())
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(h.state().await.total, 2000);
    // The code changed: each deposit now counts ten times.
    SCALE.store(10, Ordering::SeqCst);
    let writer = {
        let k = k.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..300u64 {
                last = deposit(&k, &format!("b{}", i % 3), 1).await;
            }
            last
        })
    };
    let rebuilt = k
        .projections()
        .rebuild::<Scaled>(ProjectionOptions::default().batch_size(50))
        .await
        .unwrap();
    let last = writer.await.unwrap();
    assert!(rebuilt >= 2000);
    h.wait_for(last).await.unwrap();
    let state = h.state().await;
    // Every event exactly once: none lost, none handled twice around the swap. Events the old
    // runner handled before the swap counted once; all others ten times.
    assert_eq!(state.events, 2300, "{state:?}");
    assert!(state.total >= 20_000 + 10 * (last - rebuilt), "{state:?}");
    let checkpoint = CheckpointStore::load(&store, "scaled")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.position, h.position());
    let saved: Scaled = serde_json::from_slice(&checkpoint.state.unwrap()).unwrap();
    assert_eq!(saved, state);
    assert_eq!(k.projections().lookup("scaled").unwrap().rebuild, None);
    // A rebuild with no more events coming: exactly the new code's answer.
    k.projections()
        .rebuild::<Scaled>(ProjectionOptions::default())
        .await
        .unwrap();
    assert_eq!(h.state().await.total, 23_000);
    SCALE.store(1, Ordering::SeqCst);
}

#[tokio::test]
async fn a_rebuild_without_a_runner_saves_the_checkpoint_a_start_resumes_from() {
    let store = MemoryStore::new();
    let k = kernel(store.clone());
    let last = deposit(&k, "a", 5).await;
    let position = k
        .projections()
        .rebuild::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    assert_eq!(position, last);
    let checkpoint = CheckpointStore::load(&store, "balances")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.position, last);
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await
        .unwrap();
    assert_eq!(h.position(), last);
    assert_eq!(h.state().await.by_account["a"], 5);
}

#[tokio::test]
async fn a_runner_without_a_checkpoint_store_is_refused_unless_in_memory() {
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .event_store(store.clone())
        .register::<Account>()
        .build()
        .unwrap();
    let last = deposit(&k, "a", 5).await;
    let refused = k
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await;
    let Err(ProjectionError::NoCheckpointStore(name)) = refused else {
        panic!("expected NoCheckpointStore");
    };
    assert_eq!(name, "balances");
    assert!(k.projections().lookup("balances").is_none());
    let h = k
        .projections()
        .start::<Balances>(ProjectionOptions::default().in_memory_checkpoints())
        .await
        .unwrap();
    h.wait_for(last).await.unwrap();
    assert_eq!(h.state().await.by_account["a"], 5);
    // Or with a store in the options.
    let h = projection::spawn::<Balances>(
        store.clone(),
        ProjectionOptions::default().checkpoint_store(store.clone()),
    )
    .await
    .unwrap();
    h.wait_for(last).await.unwrap();
    h.stop().await.unwrap();
    assert_eq!(
        CheckpointStore::load(&store, "balances")
            .await
            .unwrap()
            .map(|c| c.position),
        Some(last)
    );
}
