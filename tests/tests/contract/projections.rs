//! "Projections, continued" on any store: `run_once_with` resuming across a reopen, `spawn`
//! without a kernel, idempotent `start`, envelope filters, the refusal of a runner without a
//! checkpoint store, bounded folds and `ProjectionTest`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use es_core::prelude::*;
use es_core::projection::{ProjectionError, ProjectionPhase, run_once_with, spawn};
use es_core::store::{Store, fold_all, fold_stream};
use es_core::testkit::{ProjectionTest, recorded};
use es_examples::bank::{BankAccount, Deposit, Deposited};
use serde::{Deserialize, Serialize};

use super::Error;

/// Deposits per account, of bank accounts only (a wallet's `Deposited` has the same name).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankDeposits {
    pub by_account: BTreeMap<String, u64>,
}

#[projection(name = "contract_bank_deposits", aggregate = "bank_account")]
impl BankDeposits {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        *self
            .by_account
            .entry(e.stream.aggregate_id.clone())
            .or_default() += e.payload.amount;
    }
}

/// Only events tagged `vip`.
pub fn vip_only(event: &RecordedEvent) -> bool {
    event.tags().iter().any(|t| t == "vip")
}

/// Deposits tagged `vip`, of any stream.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipDeposits {
    pub total: u64,
}

#[projection(name = "contract_vip_deposits", filter = vip_only)]
impl VipDeposits {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        self.total += e.payload.amount;
    }
}

/// A wallet's deposit, stored under the bank's event name (raw, so no kernel sees it).
fn wallet_deposit(amount: u64) -> NewEvent {
    NewEvent::new("Deposited", format!("{{\"amount\":{amount}}}").into_bytes())
}

/// The contract on a store that `open` opens (again, for the durable ones: a reopen is a
/// restart).
pub async fn projections_contract<S, F, Fut>(open: F) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, Error>>,
{
    // Every position, in order (PostgreSQL's need not start at 1 nor be gapless).
    let mut ps: Vec<u64> = Vec::new();
    {
        let store = open().await?;
        let kernel = Kernel::builder()
            .store(store.clone())
            .register::<BankAccount>()
            .build()?;
        for (id, amount) in [("acc-1", 10), ("acc-2", 5), ("acc-1", 1)] {
            let done = kernel
                .dispatch::<BankAccount>(id, Deposit { amount })
                .await?;
            ps.push(done.events[0].position);
        }
        let done = kernel
            .dispatch_with::<BankAccount>(
                "acc-3",
                Deposit { amount: 7 },
                DispatchOptions::default().tag("vip"),
            )
            .await?;
        ps.push(done.events[0].position);
        // A wallet's deposits, one of them tagged.
        let done = store
            .append(
                &StreamId::new("wallet", "w-1"),
                ExpectedVersion::Any,
                vec![wallet_deposit(100), wallet_deposit(1000).tag("vip")],
            )
            .await?;
        ps.extend(done.events.iter().map(|e| e.position));
        kernel.shutdown().await;

        // run_once_with: the aggregate filter keeps the wallet out; the checkpoint is saved.
        let options = ProjectionOptions::default().checkpoint_store(store.clone());
        let (state, last) = run_once_with::<BankDeposits>(&store, options.clone()).await?;
        assert_eq!(last, ps[5]);
        assert_eq!(state.by_account["acc-1"], 11);
        assert_eq!(state.by_account["acc-3"], 7);
        assert_eq!(state.by_account.len(), 3, "no wallet: {state:?}");
        let (vip, _) = run_once_with::<VipDeposits>(&store, options).await?;
        assert_eq!(vip.total, 1007);

        // Without a checkpoint store: refused, with how to give one.
        let refused = run_once_with::<BankDeposits>(&store, ProjectionOptions::default()).await;
        match refused {
            Err(ProjectionError::NoCheckpointStore(name)) => {
                assert_eq!(name, BankDeposits::NAME);
            }
            other => panic!("expected NoCheckpointStore, got {other:?}"),
        }
        let message = ProjectionError::NoCheckpointStore("x".into()).to_string();
        assert!(message.contains("in_memory_checkpoints()"), "{message}");
        let (from_zero, _) = run_once_with::<BankDeposits>(
            &store,
            ProjectionOptions::default().in_memory_checkpoints(),
        )
        .await?;
        assert_eq!(from_zero, state);
        let kernel = Kernel::builder()
            .event_store(store.clone())
            .register::<BankAccount>()
            .build()?;
        match kernel
            .projections()
            .start::<BankDeposits>(ProjectionOptions::default())
            .await
        {
            Err(ProjectionError::NoCheckpointStore(_)) => {}
            Err(other) => panic!("expected NoCheckpointStore, got {other}"),
            Ok(_) => panic!("a runner without a checkpoint store must be refused"),
        }
        kernel.shutdown().await;
    }

    // After a reopen: run_once_with resumes from the saved state and position.
    let store = open().await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .build()?;
    let done = kernel
        .dispatch::<BankAccount>("acc-2", Deposit { amount: 2 })
        .await?;
    ps.push(done.events[0].position);
    let options = ProjectionOptions::default().checkpoint_store(store.clone());
    let (state, last) = run_once_with::<BankDeposits>(&store, options.clone()).await?;
    assert_eq!((last, state.by_account["acc-2"]), (ps[6], 7));
    // start_position is honoured (in memory only here: saving would replace the checkpoint
    // with a state that misses positions 1 to 3).
    let from_4 = ProjectionOptions::default()
        .in_memory_checkpoints()
        .start_position(ps[3]);
    let (state, last) = run_once_with::<BankDeposits>(&store, from_4).await?;
    assert_eq!(last, ps[6]);
    assert_eq!(
        state.by_account.keys().collect::<Vec<_>>(),
        ["acc-2", "acc-3"]
    );

    // Idempotent start: the second start returns the running runner.
    let first = kernel
        .projections()
        .start::<VipDeposits>(ProjectionOptions::default())
        .await?;
    let second = kernel
        .projections()
        .start::<VipDeposits>(ProjectionOptions::default().batch_size(1))
        .await?;
    first.wait_for(ps[6]).await?;
    let done = kernel
        .dispatch_with::<BankAccount>(
            "acc-1",
            Deposit { amount: 3 },
            DispatchOptions::default().tag("vip"),
        )
        .await?;
    ps.push(done.events[0].position);
    second.wait_for(ps[7]).await?;
    assert_eq!(first.state().await.total, 1010);
    assert_eq!(second.state().await.total, 1010);
    assert_eq!(kernel.projections().names().len(), 1);
    kernel.shutdown().await;

    // spawn: no kernel, on the store itself and on an Arc<dyn Store>.
    let handle = spawn::<BankDeposits>(
        store.clone(),
        ProjectionOptions::default().checkpoint_store(store.clone()),
    )
    .await?;
    handle.wait_for(ps[7]).await?;
    assert_eq!(handle.state().await.by_account["acc-1"], 14);
    handle.stop().await?;
    assert!(matches!(
        handle.status().phase,
        ProjectionPhase::Stopped { error: None }
    ));
    let dynamic: Arc<dyn Store> = Arc::new(store.clone());
    let handle = spawn::<VipDeposits>(
        dynamic.clone(),
        ProjectionOptions::default().checkpoint_store(dynamic.clone()),
    )
    .await?;
    // Resumes from the checkpoint the kernel's runner saved.
    assert!(handle.position() >= ps[7], "at {}", handle.position());
    assert_eq!(handle.state().await.total, 1010);
    let done = store
        .append(
            &StreamId::new("wallet", "w-2"),
            ExpectedVersion::Any,
            vec![wallet_deposit(1).tag("vip")],
        )
        .await?;
    ps.push(done.events[0].position);
    handle.wait_for(ps[8]).await?;
    assert_eq!(handle.state().await.total, 1011);
    handle.stop().await?;
    match spawn::<VipDeposits>(store.clone(), ProjectionOptions::default()).await {
        Err(ProjectionError::NoCheckpointStore(_)) => {}
        Err(other) => panic!("expected NoCheckpointStore, got {other}"),
        Ok(_) => panic!("a runner without a checkpoint store must be refused"),
    }

    // Bounded folds.
    let collect = |mut v: Vec<u64>, e: RecordedEvent| {
        v.push(e.position);
        v
    };
    assert_eq!(ps.len(), 9);
    assert_eq!(fold_all(&store, .., Vec::new(), collect).await?, ps);
    assert_eq!(
        fold_all(&store, ps[1]..ps[3], Vec::new(), collect).await?,
        ps[1..3]
    );
    assert_eq!(
        fold_all(&store, ps[4].., Vec::new(), collect).await?,
        ps[4..]
    );
    assert_eq!(
        fold_all(&store, ..=ps[2], Vec::new(), collect).await?,
        ps[..=2]
    );
    assert_eq!(fold_all(&store, ps[8] + 1.., 0, |n, _| n + 1).await?, 0);
    assert_eq!(fold_all(&store, ps[3]..ps[3], 0, |n, _| n + 1).await?, 0);
    let acc1 = StreamId::new("bank_account", "acc-1");
    let sequences = |mut v: Vec<u64>, e: RecordedEvent| {
        v.push(e.sequence);
        v
    };
    assert_eq!(
        fold_stream(&store, &acc1, 2.., Vec::new(), sequences).await?,
        [2, 3]
    );
    assert_eq!(
        fold_stream(&store, &acc1, ..2, Vec::new(), sequences).await?,
        [1]
    );
    assert_eq!(
        fold_stream(&store, &acc1, 2..=2, Vec::new(), sequences).await?,
        [2]
    );

    // ProjectionTest on what the store holds: the same answer as the runner's.
    let events = fold_all(&store, .., Vec::new(), |mut v, e| {
        v.push(e);
        v
    })
    .await?;
    let runner_state = handle.state().await;
    ProjectionTest::<VipDeposits>::given(events).then_state(|s| assert_eq!(*s, runner_state));
    ProjectionTest::<BankDeposits>::given([
        recorded("bank_account", "a", &Deposited { amount: 4 })?,
        recorded("wallet", "a", &Deposited { amount: 40 })?,
    ])
    .then_state(|s| assert_eq!(s.by_account["a"], 4));
    Ok(())
}
