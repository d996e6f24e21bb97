//! A process manager under `OnError::Park`: an instance whose handler fails is parked with its
//! event, and every later event of that instance behind it, in order; other instances go on
//! and send their commands; a parked instance sends nothing until retried; a retry sends the
//! parked events' commands once, in order, with the command ids they would have had; a skip
//! drops one and keeps the reason; a restart keeps what is parked.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::LazyLock;

use common::{Account, AccountCommand};
use es_core::prelude::*;
use es_core::process::command_id;
use es_core::projection::{OnError, ProjectionError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The instance keys whose handler fails for now (each test uses keys of its own).
static BROKEN: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// Relays each `Ordered` event of an instance as a deposit to account `out-{key}`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Relay {
    relayed: u32,
}

impl ProcessManager for Relay {
    const NAME: &'static str = "relay";
    fn accepts(event_type: &str) -> bool {
        event_type == "Ordered"
    }
    fn starts(_: &RecordedEvent) -> bool {
        true
    }
    fn handle(&mut self, event: &RecordedEvent, out: &mut Commands) -> Result<(), ProjectionError> {
        let key = out.key().to_owned();
        if BROKEN.lock().contains(&key) {
            return Err(ProjectionError::State(format!("{key} is broken")));
        }
        let amount: u64 = serde_json::from_slice(&event.payload)
            .map_err(|e| ProjectionError::State(e.to_string()))?;
        self.relayed += 1;
        out.dispatch::<Account>(format!("out-{key}"), AccountCommand::Deposit(amount));
        Ok(())
    }
}

/// Appends an `Ordered` event of `amount` in instance `key`; returns its position.
async fn order(store: &MemoryStore, key: &str, amount: u64) -> u64 {
    let new = NewEvent::new("Ordered", amount.to_string().into_bytes()).correlation_id(key);
    let done = store
        .append(
            &StreamId::new("order", key),
            ExpectedVersion::Any,
            vec![new],
        )
        .await
        .unwrap();
    done.events[0].position
}

/// The amounts deposited to account `out-{key}`, in order, with their command ids.
async fn deposits(store: &MemoryStore, key: &str) -> Vec<(u64, String)> {
    let events = store
        .read_stream(&StreamId::new("account", format!("out-{key}")), 1, 100)
        .await
        .unwrap();
    events
        .iter()
        .map(|e| {
            let payload: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
            let amount = payload["Deposited"]["amount"]
                .as_u64()
                .or_else(|| payload["amount"].as_u64())
                .unwrap();
            (amount, e.command_id().unwrap_or_default().to_owned())
        })
        .collect()
}

fn kernel_on(store: &MemoryStore) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .register::<Account>()
        .build()
        .unwrap()
}

/// A kernel on `store` running `Relay` under `parking()`.
async fn start_relay(store: &MemoryStore) -> (Kernel, ProcessHandle<Relay>) {
    let kernel = kernel_on(store);
    let relay = kernel
        .process_managers()
        .start::<Relay>(parking())
        .await
        .unwrap();
    (kernel, relay)
}

fn parking() -> ProjectionOptions {
    ProjectionOptions::default()
        .error_policy(OnError::park())
        .poll_interval(std::time::Duration::from_millis(10))
}

#[tokio::test]
async fn a_failing_instance_is_parked_others_go_on_and_a_retry_sends_its_commands_once_in_order() {
    BROKEN.lock().insert("bad-1".to_owned());
    let store = MemoryStore::new();
    let g1 = order(&store, "good-1", 1).await;
    let b1 = order(&store, "bad-1", 10).await;
    let b2 = order(&store, "bad-1", 20).await;
    let g2 = order(&store, "good-1", 2).await;
    let b3 = order(&store, "bad-1", 30).await;
    let (kernel, relay) = start_relay(&store).await;
    relay.wait_for(b3).await.unwrap();

    let good = deposits(&store, "good-1").await;
    assert_eq!(
        good,
        [
            (1, command_id("relay", "good-1", g1, 0)),
            (2, command_id("relay", "good-1", g2, 0))
        ]
    );
    assert!(
        deposits(&store, "bad-1").await.is_empty(),
        "a parked instance sends nothing"
    );
    let letters = kernel
        .process_managers()
        .dead_letters("relay")
        .await
        .unwrap();
    let parked: Vec<(&str, u64)> = letters
        .iter()
        .map(|l| (l.key.as_str(), l.position))
        .collect();
    assert_eq!(parked, [("bad-1", b1), ("bad-1", b2), ("bad-1", b3)]);
    assert!(letters[0].error.contains("bad-1 is broken"), "{letters:?}");
    assert_eq!(letters[1].error, format!("parked behind position {b1}"));
    assert!(
        letters
            .iter()
            .all(|l| l.is_parked() && l.event_type == "Ordered")
    );
    assert_eq!(relay.dead_letters(), letters);

    // Still broken: the retry fails on the first and keeps all three parked.
    let again = relay.retry("bad-1").await.unwrap_err();
    assert!(again.to_string().contains("failed again"), "{again}");
    assert_eq!(relay.dead_letters().len(), 3);
    assert!(deposits(&store, "bad-1").await.is_empty());

    BROKEN.lock().remove("bad-1");
    let applied = kernel
        .process_managers()
        .retry("relay", "bad-1")
        .await
        .unwrap();
    assert_eq!(applied, 3);
    assert_eq!(
        deposits(&store, "bad-1").await,
        [
            (10, command_id("relay", "bad-1", b1, 0)),
            (20, command_id("relay", "bad-1", b2, 0)),
            (30, command_id("relay", "bad-1", b3, 0)),
        ],
        "the parked events' commands, once each, in order, with their own command ids"
    );
    assert!(relay.dead_letters().is_empty());
    let nothing = relay.retry("bad-1").await.unwrap_err();
    assert!(
        nothing
            .to_string()
            .contains("no event of `bad-1` is parked"),
        "{nothing}"
    );

    // Later events of the instance are handled as usual again.
    let b4 = order(&store, "bad-1", 40).await;
    relay.wait_for(b4).await.unwrap();
    assert_eq!(deposits(&store, "bad-1").await.len(), 4);
    // Handled again from the checkpoint after a restart, nothing is sent twice.
    kernel.shutdown().await;
    let (kernel, relay) = start_relay(&store).await;
    relay.wait_for(b4).await.unwrap();
    assert_eq!(deposits(&store, "bad-1").await.len(), 4);
    assert_eq!(deposits(&store, "good-1").await.len(), 2);
    kernel.shutdown().await;
}

#[tokio::test]
async fn parked_instances_survive_a_restart_and_a_skip_keeps_its_reason() {
    BROKEN.lock().insert("bad-2".to_owned());
    let store = MemoryStore::new();
    let b1 = order(&store, "bad-2", 1).await;
    let b2 = order(&store, "bad-2", 2).await;
    let g1 = order(&store, "good-2", 3).await;
    let (kernel, relay) = start_relay(&store).await;
    relay.wait_for(g1).await.unwrap();
    assert_eq!(relay.dead_letters().len(), 2);
    kernel.shutdown().await;

    // A new kernel reads them from the checkpoint before and after it starts the runner.
    let kernel = kernel_on(&store);
    let stored = kernel
        .process_managers()
        .dead_letters("relay")
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|l| l.position).collect::<Vec<_>>(),
        [b1, b2]
    );
    let relay = kernel
        .process_managers()
        .start::<Relay>(parking())
        .await
        .unwrap();
    relay.wait_for(g1).await.unwrap();
    assert_eq!(relay.dead_letters(), stored);
    // Events of a parked instance that arrive after the restart are parked behind.
    let b3 = order(&store, "bad-2", 4).await;
    relay.wait_for(b3).await.unwrap();
    assert_eq!(relay.dead_letters().len(), 3);

    let wrong = relay.skip("bad-2", g1, "no such").await.unwrap_err();
    assert!(
        wrong.to_string().contains("is parked at position"),
        "{wrong}"
    );
    relay.skip("bad-2", b1, "bad data").await.unwrap();
    BROKEN.lock().remove("bad-2");
    assert_eq!(relay.retry("bad-2").await.unwrap(), 2);
    assert_eq!(
        deposits(&store, "bad-2").await,
        [
            (2, command_id("relay", "bad-2", b2, 0)),
            (4, command_id("relay", "bad-2", b3, 0))
        ]
    );
    kernel.shutdown().await;

    let kernel = kernel_on(&store);
    let letters = kernel
        .process_managers()
        .dead_letters("relay")
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].position, b1);
    assert_eq!(letters[0].skipped.as_deref(), Some("bad data"));
    assert!(!letters[0].is_parked());
    kernel.shutdown().await;
}

#[tokio::test]
async fn retry_and_skip_need_a_running_manager_of_that_name() {
    let kernel = kernel_on(&MemoryStore::new());
    let managers = kernel.process_managers();
    assert!(matches!(
        managers.retry("relay", "k").await,
        Err(ProjectionError::NotFound(_))
    ));
    assert!(matches!(
        managers.skip("relay", "k", 1, "r").await,
        Err(ProjectionError::NotFound(_))
    ));
    assert!(managers.dead_letters("relay").await.unwrap().is_empty());
    kernel.shutdown().await;
}

/// Starts an instance, which schedules `Late` 30 s later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Began;
/// Continues one: fails while its instance is broken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Nudged;
/// The deadline: deposits 1 to account `late-{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Late;

/// Schedules `Late` for each instance; its `Nudged` handler fails while the instance is broken.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Guard;

#[process_manager(name = "guard")]
impl Guard {
    #[on(start)]
    fn began(&mut self, _: &Recorded<Began>, out: &mut Commands) {
        out.schedule(std::time::Duration::from_secs(30), Late);
    }
    #[on]
    fn nudged(&mut self, _: &Recorded<Nudged>, out: &mut Commands) {
        assert!(!BROKEN.lock().contains(out.key()), "broken instance");
    }
    #[on(deadline)]
    fn late(&mut self, _: &Late, out: &mut Commands) {
        out.dispatch::<Account>(format!("late-{}", out.key()), AccountCommand::Deposit(1));
    }
}

/// Appends `event` in instance `key`, stamped `at` seconds after the epoch.
async fn stamped<E: Event>(store: &MemoryStore, key: &str, at: i64, event: E) -> u64 {
    let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp(at, 0).unwrap();
    let new = NewEvent::new(E::NAME, event.encode_payload().unwrap())
        .correlation_id(key)
        .timestamp(stamp);
    let stream = StreamId::new("thing", format!("{key}-{at}"));
    let done = store
        .append(&stream, ExpectedVersion::NoStream, vec![new])
        .await
        .unwrap();
    done.events[0].position
}

#[tokio::test]
async fn a_parked_instance_fires_no_deadline_until_it_is_retried() {
    BROKEN.lock().insert("late-bad".to_owned());
    let store = MemoryStore::new();
    stamped(&store, "late-bad", 0, Began).await;
    stamped(&store, "late-bad", 10, Nudged).await;
    stamped(&store, "late-good", 0, Began).await;
    // Both deadlines (due at 30) fall due by this event's stamp.
    let at = stamped(&store, "other", 100, Nudged).await;
    let clock = es_core::clock::ManualClock::new(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let kernel = Kernel::builder()
        .store(store.clone())
        .clock(clock)
        .register::<Account>()
        .build()
        .unwrap();
    let guard = kernel
        .process_managers()
        .start::<Guard>(parking())
        .await
        .unwrap();
    guard.wait_for(at).await.unwrap();
    let late = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .read_stream(&StreamId::new("account", format!("late-{key}")), 1, 10)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        late("late-good").await,
        1,
        "the other instance's deadline fired"
    );
    assert_eq!(late("late-bad").await, 0, "the parked instance's did not");
    assert_eq!(guard.pending_deadlines(), 1);
    assert_eq!(guard.dead_letters().len(), 1);

    BROKEN.lock().remove("late-bad");
    assert_eq!(guard.retry("late-bad").await.unwrap(), 1);
    // Its deadline fires at the next point deadlines fire: the next page's stamps.
    let next = stamped(&store, "other", 200, Nudged).await;
    guard.wait_for(next).await.unwrap();
    assert_eq!(late("late-bad").await, 1);
    assert_eq!(guard.pending_deadlines(), 0);
    kernel.shutdown().await;
}
