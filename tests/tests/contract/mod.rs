//! The kernel and projection sections of the design, as one function any store can run.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

mod envelope;
mod evolution;
mod projections;
pub use envelope::envelope_contract;
pub use evolution::evolution_contract;
pub use projections::projections_contract;

use es_core::prelude::*;
use es_examples::bank::{Balances, BankAccount, BankError, Deposit, Withdraw};

/// A test's error: anything.
pub type Error = Box<dyn std::error::Error>;

/// The kernel and projection contract on `store`: dispatch, a rejection, the zero-amount rule,
/// state, live count, `run_once`, a live runner with read-your-writes, lookup, stop, shutdown.
pub async fn kernel_contract<S>(store: S) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    let kernel = Kernel::builder()
        .store(store.clone())
        .snapshot_every(10)
        .passivate_after(Duration::from_secs(5))
        .register::<BankAccount>()
        .build()?;

    let done: Committed = kernel
        .dispatch::<BankAccount>("acc-1", Deposit { amount: 100 })
        .await?;
    assert_eq!(done.version, 1);
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].event_type, "Deposited");
    match kernel
        .dispatch::<BankAccount>("acc-1", Withdraw { amount: 1_000 })
        .await
    {
        Err(DispatchError::Rejected(BankError::InsufficientFunds { .. })) => {}
        other => panic!("{other:?}"),
    }
    match kernel
        .dispatch::<BankAccount>("acc-1", Deposit { amount: 0 })
        .await
    {
        Err(DispatchError::Rejected(BankError::ZeroAmount)) => {}
        other => panic!("a zero deposit must be rejected: {other:?}"),
    }
    let done = kernel
        .dispatch::<BankAccount>("acc-1", Withdraw { amount: 10 })
        .await?;
    assert_eq!(done.events[0].event_type, "bank.withdrawn");
    let state: BankAccount = kernel.state::<BankAccount>("acc-1").await?;
    assert_eq!(state.balance, 90);
    let live: usize = kernel.live_aggregates();
    assert_eq!(live, 1);

    // The projection section.
    let balances: Balances = es_core::projection::run_once(&store).await?;
    assert_eq!(balances.by_account["acc-1"], 90);
    let handle = kernel
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await?;
    let done = kernel
        .dispatch::<BankAccount>("acc-1", Deposit { amount: 5 })
        .await?;
    handle
        .wait_for(done.events.last().unwrap().position)
        .await?;
    let now: Balances = handle.state().await;
    assert_eq!(now.by_account["acc-1"], 95);
    let status = kernel.projections().lookup(Balances::NAME);
    assert!(status.is_some());
    kernel.projections().stop(Balances::NAME).await?;
    kernel.shutdown().await;
    assert_eq!(kernel.live_aggregates(), 0);
    Ok(())
}
