//! A model test of the kernel: random command sequences over a few aggregates, run
#![allow(clippy::unwrap_used)]
//! concurrently across aggregates with random pauses that let actors passivate, must give the
//! same answers and end states as applying each aggregate's commands sequentially to a model.
//! Scripts repeat command ids from a small pool: a repeat within the last `WINDOW` commands that
//! wrote events gets the first answer exactly, anything else runs.

mod common;

use std::time::Duration;

use common::*;
use es_core::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Deposit(u64, Option<u8>),
    Withdraw(u64, Option<u8>),
    Touch(Option<u8>),
    /// Sleep long enough (or not) for the actor to passivate.
    Pause(u64),
    /// Ask for the state.
    Look,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..50, id()).prop_map(|(n, id)| Step::Deposit(n, id)),
        3 => (1u64..80, id()).prop_map(|(n, id)| Step::Withdraw(n, id)),
        1 => id().prop_map(Step::Touch),
        2 => (0u64..4).prop_map(Step::Pause),
        1 => Just(Step::Look),
    ]
}

/// No id half the time, else one of five.
fn id() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![1 => Just(None), 1 => (0u8..5).prop_map(Some)]
}

/// The kernel's idempotency window in this test: small, so ids fall out of it.
const WINDOW: usize = 4;

/// What the model knows of one aggregate.
#[derive(Default)]
struct Model {
    balance: u64,
    version: u64,
    /// The commands that wrote events, oldest first: their id and their answer.
    committed: Vec<(Option<u8>, Committed)>,
}

impl Model {
    /// The first answer to `id`, if it is within the window.
    fn repeat(&self, id: Option<u8>) -> Option<Committed> {
        let id = id?;
        self.committed
            .iter()
            .rev()
            .take(WINDOW)
            .find(|(seen, _)| *seen == Some(id))
            .map(|(_, answer)| answer.clone())
    }
}

fn options(id: Option<u8>, aggregate: &str) -> DispatchOptions {
    match id {
        Some(n) => DispatchOptions::default().command_id(format!("{aggregate}-cmd-{n}")),
        None => DispatchOptions::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn kernel_matches_a_sequential_model(
        scripts in proptest::collection::vec(proptest::collection::vec(step(), 1..25), 1..5)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let kernel = Kernel::builder()
                .store(store.clone())
                .passivate_after(Duration::from_millis(1))
                .snapshot_every(3)
                .dedup_window(WINDOW)
                .register::<Account>()
                .build()
                .unwrap();
            let mut tasks = Vec::new();
            for (i, script) in scripts.iter().cloned().enumerate() {
                let kernel = kernel.clone();
                tasks.push(tokio::spawn(async move {
                    let id = format!("m-{i}");
                    let mut m = Model::default();
                    for step in script {
                        match step {
                            Step::Deposit(n, cid) => {
                                let done = kernel.dispatch_with::<Account>(&id, AccountCommand::Deposit(n), options(cid, &id)).await.unwrap();
                                if let Some(first) = m.repeat(cid) {
                                    assert_eq!(done, first, "{id}: repeated deposit {cid:?}");
                                } else {
                                    m.balance += n;
                                    m.version += 1;
                                    assert_eq!(done.version, m.version, "{id}: deposit {n}");
                                    m.committed.push((cid, done));
                                }
                            }
                            Step::Withdraw(n, cid) => {
                                let done = kernel.dispatch_with::<Account>(&id, AccountCommand::Withdraw(n), options(cid, &id)).await;
                                if let Some(first) = m.repeat(cid) {
                                    assert_eq!(done.ok(), Some(first), "{id}: repeated withdraw {cid:?}");
                                } else if n > m.balance {
                                    let balance = m.balance;
                                    assert!(
                                        matches!(done, Err(DispatchError::Rejected(AccountError::InsufficientFunds { balance: b, requested })) if b == balance && requested == n),
                                        "{id}: withdraw {n} of {balance} should be rejected, got {done:?}"
                                    );
                                } else {
                                    m.balance -= n;
                                    m.version += 1;
                                    let done = done.unwrap();
                                    assert_eq!(done.version, m.version, "{id}: withdraw {n}");
                                    m.committed.push((cid, done));
                                }
                            }
                            Step::Touch(cid) => {
                                let done = kernel.dispatch_with::<Account>(&id, AccountCommand::Touch, options(cid, &id)).await.unwrap();
                                match m.repeat(cid) {
                                    Some(first) => assert_eq!(done, first, "{id}: repeated touch {cid:?}"),
                                    None => assert_eq!((done.version, done.events.len()), (m.version, 0)),
                                }
                            }
                            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                            Step::Look => {
                                let state = kernel.state::<Account>(&id).await.unwrap();
                                assert_eq!(state.balance, m.balance, "{id}: state");
                            }
                        }
                    }
                    let (balance, version) = (m.balance, m.version);
                    (id, balance, version)
                }));
            }
            for t in tasks {
                let (id, balance, version) = t.await.unwrap();
                let state = kernel.state::<Account>(&id).await.unwrap();
                prop_assert_eq!(state.balance, balance);
                prop_assert_eq!(store.stream_version(&stream(&id)).await.unwrap(), version);
            }
            kernel.shutdown().await;
            Ok(())
        })?;
    }
}
