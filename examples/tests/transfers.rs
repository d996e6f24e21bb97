//! The transfer process manager on the kernel: money moves once, refusals are compensated,
//! a re-run after an interruption takes no effect twice, and bad input stops nothing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::clock::{Clock, ManualClock, SystemClock};
use es_core::prelude::*;
use es_core::process::{CHECKPOINT_PREFIX, causation_id, command_id};
use es_core::projection::{ErrorPolicy, ProjectionPhase};
use es_examples::bank::*;
use serde::{Deserialize, Serialize};

fn kernel(store: MemoryStore) -> Kernel {
    kernel_on(store, SystemClock)
}

fn kernel_on(store: MemoryStore, clock: impl Clock) -> Kernel {
    Kernel::builder()
        .store(store)
        .clock(clock)
        .register::<BankAccount>()
        .register::<TransferDesk>()
        .build()
        .unwrap()
}

async fn request(kernel: &Kernel, key: &str, from: &str, to: &str, amount: u64) -> u64 {
    let done = kernel
        .dispatch_with::<TransferDesk>(
            "desk",
            RequestTransfer {
                from: from.into(),
                to: to.into(),
                amount,
            },
            DispatchOptions::default().command_id(key),
        )
        .await
        .unwrap();
    done.events[0].position
}

/// Puts 100 in account `a` and starts the transfers manager.
async fn funded(kernel: &Kernel) -> ProcessHandle<Transfer> {
    kernel
        .dispatch::<BankAccount>("a", Deposit { amount: 100 })
        .await
        .unwrap();
    kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default())
        .await
        .unwrap()
}

async fn balance(kernel: &Kernel, id: &str) -> u64 {
    kernel.state::<BankAccount>(id).await.unwrap().balance
}

async fn all_events(store: &MemoryStore) -> Vec<RecordedEvent> {
    store.read_all(1, 100_000).await.unwrap()
}

#[tokio::test]
async fn a_transfer_moves_money_once_with_the_envelope_of_its_instance() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    let transfers = funded(&kernel).await;
    let at = request(&kernel, "t-1", "a", "b", 30).await;
    transfers.wait_for(at).await.unwrap();
    // The withdrawal's event comes later; wait until the whole chain is handled.
    let head = store.head_position().await.unwrap();
    transfers.wait_for(head).await.unwrap();
    let head = store.head_position().await.unwrap();
    transfers.wait_for(head).await.unwrap();
    assert_eq!(balance(&kernel, "a").await, 70);
    assert_eq!(balance(&kernel, "b").await, 30);
    assert_eq!(transfers.instances().await, 0);

    let events = all_events(&store).await;
    let withdrawn: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "bank.withdrawn")
        .collect();
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0].correlation_id(), Some("t-1"));
    assert_eq!(withdrawn[0].causation_id(), Some(causation_id(at).as_str()));
    assert_eq!(
        withdrawn[0].command_id(),
        Some(command_id("transfers", "t-1", at, 0).as_str())
    );
    let deposited_to_b = events
        .iter()
        .filter(|e| e.event_type == "Deposited" && e.stream.aggregate_id == "b")
        .count();
    assert_eq!(deposited_to_b, 1);
    let status = kernel.process_managers().lookup("transfers").unwrap();
    assert_eq!(status.commands_sent, 2);
    assert_eq!(status.rejections, 0);
    kernel.shutdown().await;
}

async fn settle(store: &MemoryStore, transfers: &ProcessHandle<Transfer>) {
    // Each round handles the events the previous round's commands caused.
    for _ in 0..5 {
        let head = store.head_position().await.unwrap();
        transfers.wait_for(head).await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_withdrawal_ends_the_transfer_and_a_refused_deposit_is_compensated() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    kernel
        .dispatch::<BankAccount>("a", Deposit { amount: 100 })
        .await
        .unwrap();
    kernel
        .dispatch::<BankAccount>("closed", Close)
        .await
        .unwrap();
    let transfers = kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default())
        .await
        .unwrap();
    request(&kernel, "too-much", "a", "b", 1_000).await;
    request(&kernel, "to-closed", "a", "closed", 40).await;
    settle(&store, &transfers).await;
    assert_eq!(balance(&kernel, "a").await, 100);
    assert_eq!(balance(&kernel, "b").await, 0);
    assert_eq!(balance(&kernel, "closed").await, 0);
    assert_eq!(transfers.instances().await, 0);
    let events = all_events(&store).await;
    let compensations: Vec<_> = events
        .iter()
        .filter(|e| {
            e.event_type == "Deposited"
                && e.stream.aggregate_id == "a"
                && e.correlation_id() == Some("to-closed")
        })
        .collect();
    assert_eq!(compensations.len(), 1);
    let status = transfers.status();
    assert_eq!(status.rejections, 2);
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_rerun_from_an_old_checkpoint_takes_no_effect_twice() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    for id in ["a", "b", "c"] {
        kernel
            .dispatch::<BankAccount>(id, Deposit { amount: 1_000 })
            .await
            .unwrap();
    }
    kernel
        .dispatch::<BankAccount>("closed", Close)
        .await
        .unwrap();
    let transfers = kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default().batch_size(3))
        .await
        .unwrap();
    for i in 0..30u64 {
        let (from, to) = match i % 4 {
            0 => ("a", "b"),
            1 => ("b", "c"),
            2 => ("c", "closed"),
            _ => ("c", "a"),
        };
        request(&kernel, &format!("t-{i}"), from, to, 10 + i).await;
    }
    settle(&store, &transfers).await;
    let events_before = all_events(&store).await.len();
    let balances_before = [
        balance(&kernel, "a").await,
        balance(&kernel, "b").await,
        balance(&kernel, "c").await,
    ];
    assert_eq!(balances_before.iter().sum::<u64>(), 3_000);
    transfers.stop().await;

    // Pretend every checkpoint after the first was lost (a crash right after dispatching):
    // the next runner handles everything again from the start.
    CheckpointStore::save(&store, &format!("{CHECKPOINT_PREFIX}transfers"), 0, None)
        .await
        .unwrap();
    let transfers = kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default().batch_size(7))
        .await
        .unwrap();
    settle(&store, &transfers).await;
    assert_eq!(all_events(&store).await.len(), events_before);
    assert_eq!(
        [
            balance(&kernel, "a").await,
            balance(&kernel, "b").await,
            balance(&kernel, "c").await,
        ],
        balances_before
    );
    assert_eq!(transfers.instances().await, 0);
    kernel.shutdown().await;
}

/// The transfer timeout fires by the log's timestamps when the log is handled again: a runner
/// that re-runs the whole log an hour later (its checkpoints lost) sees each deposit's answer
/// before its timeout, so it gives no money back.
#[tokio::test]
async fn a_rerun_long_after_the_deposits_gives_no_money_back() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
    let kernel = kernel_on(store.clone(), clock.clone());
    let transfers = funded(&kernel).await;
    request(&kernel, "t-1", "a", "b", 30).await;
    settle(&store, &transfers).await;
    assert_eq!(transfers.instances().await, 0);
    assert_eq!(
        transfers.pending_deadlines(),
        0,
        "the answer dropped the timeout"
    );
    transfers.stop().await;

    clock.advance(Duration::from_secs(3_600));
    CheckpointStore::save(&store, &format!("{CHECKPOINT_PREFIX}transfers"), 0, None)
        .await
        .unwrap();
    let events_before = all_events(&store).await.len();
    let transfers = kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default())
        .await
        .unwrap();
    settle(&store, &transfers).await;
    assert_eq!(all_events(&store).await.len(), events_before);
    assert_eq!(balance(&kernel, "a").await, 70);
    assert_eq!(balance(&kernel, "b").await, 30);
    assert_eq!(transfers.status().deadlines_fired, 0);
    kernel.shutdown().await;
}

/// A command for [`Unregistered`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Poke;

static REJECTED: AtomicUsize = AtomicUsize::new(0);

/// Sends a command to an aggregate type the kernel does not have.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Lost;

#[process_manager(name = "lost")]
impl Lost {
    #[on(start)]
    fn requested(&mut self, _e: &Recorded<TransferRequested>, out: &mut Commands) {
        out.dispatch::<Unregistered>("x", Poke);
    }
    #[rejected]
    fn refused(&mut self, r: &Rejection, out: &mut Commands) {
        assert_eq!(r.aggregate_type, "unregistered");
        assert!(r.message.contains("not registered"), "{}", r.message);
        REJECTED.fetch_add(1, Ordering::SeqCst);
        out.finish();
    }
}

/// [`Poke`]'s event.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Poked;

/// An aggregate the test kernel does not register.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Unregistered;

#[aggregate(name = "unregistered")]
impl Unregistered {
    #[command]
    fn poke(&self, _: Poke) -> Result<Poked, std::convert::Infallible> {
        Ok(Poked)
    }
    #[apply]
    fn poked(&mut self, _: &Poked) {}
}

#[tokio::test]
async fn a_command_to_an_unregistered_aggregate_is_a_rejection() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    let lost = kernel
        .process_managers()
        .start::<Lost>(ProjectionOptions::default())
        .await
        .unwrap();
    let at = request(&kernel, "t", "a", "b", 1).await;
    lost.wait_for(at).await.unwrap();
    assert_eq!(REJECTED.load(Ordering::SeqCst), 1);
    assert_eq!(lost.instances().await, 0);
    kernel.shutdown().await;
}

/// Panics on transfers of 13.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Unlucky {
    amount: u64,
}

#[process_manager(name = "unlucky")]
impl Unlucky {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<TransferRequested>, _out: &mut Commands) {
        self.amount = e.payload.amount;
        assert!(e.payload.amount != 13, "unlucky amount");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_handled_by_the_error_policy() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    let skipping = kernel
        .process_managers()
        .start::<Unlucky>(ProjectionOptions::default().error_policy(ErrorPolicy::Skip))
        .await
        .unwrap();
    request(&kernel, "t-1", "a", "b", 13).await;
    let at = request(&kernel, "t-2", "a", "b", 14).await;
    skipping.wait_for(at).await.unwrap();
    assert_eq!(
        skipping.instances().await,
        1,
        "the panicking start created nothing"
    );
    assert_eq!(skipping.status().skipped, 1);
    skipping.stop().await;

    // Under `Stop` the runner stops with the panic's message, and waiting fails at once.
    let stopping = kernel
        .process_managers()
        .start::<Unlucky>(
            ProjectionOptions::default()
                .start_position(1)
                .error_policy(ErrorPolicy::Stop),
        )
        .await
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), stopping.wait_for(at))
        .await
        .expect("never hung")
        .unwrap_err();
    assert!(error.to_string().contains("unlucky amount"), "{error}");
    assert!(matches!(
        stopping.status().phase,
        ProjectionPhase::Stopped { error: Some(_) }
    ));
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_panicking_instance_is_parked_under_park_and_others_go_on() {
    let kernel = kernel(MemoryStore::new());
    let parking = kernel
        .process_managers()
        .start::<Unlucky>(ProjectionOptions::default().error_policy(ErrorPolicy::park()))
        .await
        .unwrap();
    let unlucky = request(&kernel, "t-1", "a", "b", 13).await;
    let at = request(&kernel, "t-2", "a", "b", 14).await;
    parking.wait_for(at).await.unwrap();
    assert_eq!(parking.instances().await, 1, "only the lucky transfer runs");
    let letters = parking.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].position, unlucky);
    assert!(letters[0].error.contains("unlucky amount"), "{letters:?}");
    kernel.shutdown().await;
}

#[tokio::test]
async fn starting_twice_returns_the_running_manager_and_instances_survive_a_restart() {
    let store = MemoryStore::new();
    let kernel = kernel(store.clone());
    kernel
        .dispatch::<BankAccount>("a", Deposit { amount: 100 })
        .await
        .unwrap();
    let first = kernel
        .process_managers()
        .start::<Unlucky>(ProjectionOptions::default())
        .await
        .unwrap();
    let again = kernel
        .process_managers()
        .start::<Unlucky>(ProjectionOptions::default())
        .await
        .unwrap();
    let at = request(&kernel, "t-1", "a", "b", 5).await;
    again.wait_for(at).await.unwrap();
    assert_eq!(first.instances().await, 1);
    kernel.process_managers().stop("unlucky").await.unwrap();
    assert!(matches!(
        kernel.process_managers().lookup("unlucky").unwrap().phase,
        ProjectionPhase::Stopped { error: None }
    ));
    let restarted = kernel
        .process_managers()
        .start::<Unlucky>(ProjectionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        restarted.instances().await,
        1,
        "restored from the checkpoint"
    );
    assert_eq!(restarted.position(), at);
    assert!(kernel.process_managers().stop("nope").await.is_err());
    kernel.shutdown().await;
}

mod testkit {
    use std::time::Duration;

    use es_core::process::Rejection;
    use es_core::testkit::{ProcessTest, correlated, expect_command};
    use es_examples::bank::*;

    fn requested(key: &str, amount: u64) -> es_core::RecordedEvent {
        correlated(
            "transfer_desk",
            "desk",
            key,
            TransferRequested {
                from: "a".into(),
                to: "b".into(),
                amount,
            },
        )
    }

    #[test]
    fn a_request_withdraws_and_a_withdrawal_deposits() {
        ProcessTest::<Transfer>::given([])
            .when(requested("t-1", 30))
            .then_commands([expect_command::<BankAccount>("a", Withdraw { amount: 30 })])
            .then_state(|t| assert!(!t.withdrawn));
        let then = ProcessTest::<Transfer>::given([requested("t-1", 30)])
            .when(correlated(
                "bank_account",
                "a",
                "t-1",
                Withdrawn { amount: 30 },
            ))
            .then_commands([expect_command::<BankAccount>("b", Deposit { amount: 30 })])
            .then_state(|t| assert!(t.withdrawn));
        let sent = &then.commands()[0];
        assert_eq!(sent.options.envelope.correlation_id.as_deref(), Some("t-1"));
        assert_eq!(
            sent.options.envelope.causation_id.as_deref(),
            Some("event@2")
        );
        assert_eq!(
            sent.options.envelope.command_id.as_deref(),
            Some("transfers/t-1/2/0")
        );
        ProcessTest::<Transfer>::given([
            requested("t-1", 30),
            correlated("bank_account", "a", "t-1", Withdrawn { amount: 30 }),
        ])
        .when(correlated(
            "bank_account",
            "b",
            "t-1",
            Deposited { amount: 30 },
        ))
        .then_no_commands()
        .then_finished();
    }

    /// The README's example: time moves by hand, and the timeout fires once.
    #[test]
    fn a_deposit_without_an_answer_within_30_s_is_compensated_once() {
        let withdrawn = correlated("bank_account", "a", "t-1", Withdrawn { amount: 30 });
        let then = ProcessTest::<Transfer>::given([requested("t-1", 30), withdrawn])
            .advance(Duration::from_secs(29))
            .then_no_commands()
            .advance(Duration::from_secs(1))
            .then_commands([expect_command::<BankAccount>("a", Deposit { amount: 30 })])
            .then_finished();
        // Its command id derives from the deadline's (scheduled by the event at 2), not from
        // the time it fired.
        let sent = &then.commands()[0].options.envelope;
        assert_eq!(sent.command_id.as_deref(), Some("transfers/t-1/2:0/0"));
        assert_eq!(sent.causation_id.as_deref(), Some("deadline@2:0"));
        then.advance(Duration::from_secs(3_600)).then_no_commands();
    }

    #[test]
    fn an_answered_deposit_drops_its_timeout() {
        let test = ProcessTest::<Transfer>::given([
            requested("t-1", 30),
            correlated("bank_account", "a", "t-1", Withdrawn { amount: 30 }),
        ]);
        let pending = test.deadlines("t-1");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].name(), "bank.transfer_timed_out");
        assert_eq!(pending[0].due().timestamp(), 30);
        let then = test
            .when(correlated(
                "bank_account",
                "b",
                "t-1",
                Deposited { amount: 30 },
            ))
            .then_finished();
        assert!(then.deadlines().is_empty());
        then.advance(Duration::from_secs(60)).then_no_commands();
    }

    #[test]
    fn events_of_no_instance_are_skipped() {
        ProcessTest::<Transfer>::given([])
            .when(correlated(
                "bank_account",
                "a",
                "someone",
                Withdrawn { amount: 5 },
            ))
            .then_skipped()
            .then_no_commands();
    }

    #[test]
    fn a_refused_deposit_is_compensated() {
        let rejection = Rejection {
            aggregate_type: "bank_account".into(),
            aggregate_id: "b".into(),
            command_id: "transfers/t-1/2/0".into(),
            message: "the account is closed".into(),
        };
        ProcessTest::<Transfer>::given([
            requested("t-1", 30),
            correlated("bank_account", "a", "t-1", Withdrawn { amount: 30 }),
        ])
        .when_rejected("t-1", rejection.clone())
        .then_commands([expect_command::<BankAccount>("a", Deposit { amount: 30 })])
        .then_finished();
        // A refused withdrawal: nothing to give back.
        ProcessTest::<Transfer>::given([requested("t-1", 30)])
            .when_rejected("t-1", rejection)
            .then_no_commands()
            .then_finished();
    }
}

#[test]
fn the_manager_reports_its_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Handles are taken when the runner starts, on this thread: the local recorder sees them.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = MemoryStore::new();
        let kernel = kernel(store.clone());
        let transfers = funded(&kernel).await;
        request(&kernel, "t-1", "a", "b", 30).await;
        request(&kernel, "t-2", "a", "b", 1_000).await;
        settle(&store, &transfers).await;
        kernel.shutdown().await;
    });
    let text = handle.render();
    for line in [
        "es_process_commands_sent_total{process_manager=\"transfers\"} 3",
        "es_process_rejections_total{process_manager=\"transfers\"} 1",
        "es_process_events_handled_total{process_manager=\"transfers\"} 4",
        "es_process_instances{process_manager=\"transfers\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}
