//! A model test of the kernel: random command sequences over a few aggregates, run
#![allow(clippy::unwrap_used)]
//! concurrently across aggregates with random pauses that let actors passivate, must give the
//! same answers and end states as applying each aggregate's commands sequentially to a model.

mod common;

use std::time::Duration;

use common::*;
use es_core::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Deposit(u64),
    Withdraw(u64),
    Touch,
    /// Sleep long enough (or not) for the actor to passivate.
    Pause(u64),
    /// Ask for the state.
    Look,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u64..50).prop_map(Step::Deposit),
        3 => (1u64..80).prop_map(Step::Withdraw),
        1 => Just(Step::Touch),
        2 => (0u64..4).prop_map(Step::Pause),
        1 => Just(Step::Look),
    ]
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
                .register::<Account>()
                .build()
                .unwrap();
            let mut tasks = Vec::new();
            for (i, script) in scripts.iter().cloned().enumerate() {
                let kernel = kernel.clone();
                tasks.push(tokio::spawn(async move {
                    let id = format!("m-{i}");
                    let mut balance = 0u64;
                    let mut version = 0u64;
                    for step in script {
                        match step {
                            Step::Deposit(n) => {
                                let done = kernel.dispatch::<Account>(&id, AccountCommand::Deposit(n)).await;
                                balance += n;
                                version += 1;
                                assert_eq!(done.map(|d| d.version).ok(), Some(version), "{id}: deposit {n}");
                            }
                            Step::Withdraw(n) => {
                                let done = kernel.dispatch::<Account>(&id, AccountCommand::Withdraw(n)).await;
                                if n > balance {
                                    assert!(
                                        matches!(done, Err(DispatchError::Rejected(AccountError::InsufficientFunds { balance: b, requested })) if b == balance && requested == n),
                                        "{id}: withdraw {n} of {balance} should be rejected, got {done:?}"
                                    );
                                } else {
                                    balance -= n;
                                    version += 1;
                                    assert_eq!(done.map(|d| d.version).ok(), Some(version), "{id}: withdraw {n}");
                                }
                            }
                            Step::Touch => {
                                let done = kernel.dispatch::<Account>(&id, AccountCommand::Touch).await;
                                assert_eq!(done.map(|d| (d.version, d.events.len())).ok(), Some((version, 0)));
                            }
                            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                            Step::Look => {
                                let state = kernel.state::<Account>(&id).await.unwrap();
                                assert_eq!(state.balance, balance, "{id}: state");
                            }
                        }
                    }
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
