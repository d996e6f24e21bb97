//! The kernel and projection contract of the design, run end to end on the project's one bank
//! domain (`es_examples::bank`) on every embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod contract;

use contract::{Error, envelope_contract, evolution_contract, kernel_contract};
use es_core::prelude::*;
use es_examples::bank::{Balances, BankAccount, Deposit, Withdraw};

#[tokio::test]
async fn design_on_memory_store() -> Result<(), Error> {
    kernel_contract(MemoryStore::new()).await
}

#[tokio::test]
async fn design_on_lmdb_store() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let store = es_stores::LmdbStore::open(dir.path().join("data"))?; // Clone; EventStore + SnapshotStore + CheckpointStore
    kernel_contract(store).await
}

#[tokio::test]
async fn design_on_file_store() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    kernel_contract(es_stores::FileStore::open(dir.path().join("data"))?).await
}

/// Everything written before a restart is there after it, on the durable stores: state,
/// snapshots, projection checkpoints with their state.
async fn survives_restart<S, F>(open: F) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
    F: Fn() -> Result<S, Error>,
{
    {
        let store = open()?;
        let kernel = Kernel::builder()
            .store(store.clone())
            .snapshot_every(10)
            .register::<BankAccount>()
            .build()?;
        for i in 0..25u64 {
            kernel
                .dispatch::<BankAccount>(format!("acc-{}", i % 2), Deposit { amount: 2 })
                .await?;
        }
        let handle = kernel
            .projections()
            .start::<Balances>(ProjectionOptions::default())
            .await?;
        handle.wait_for(store.head_position().await?).await?;
        kernel.shutdown().await;
    }
    let store = open()?;
    let snapshot = store
        .load_latest(&StreamId::new("bank_account", "acc-0"))
        .await?;
    assert_eq!(snapshot.map(|s| s.version), Some(10));
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .build()?;
    assert_eq!(kernel.state::<BankAccount>("acc-0").await?.balance, 26);
    assert_eq!(kernel.state::<BankAccount>("acc-1").await?.balance, 24);
    let checkpoint = CheckpointStore::load(&store, Balances::NAME)
        .await?
        .unwrap();
    assert_eq!(checkpoint.position, 25);
    let handle = kernel
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await?;
    let done = kernel
        .dispatch::<BankAccount>("acc-1", Withdraw { amount: 4 })
        .await?;
    handle.wait_for(done.events[0].position).await?;
    assert_eq!(handle.state().await.by_account["acc-1"], 20);
    kernel.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn lmdb_survives_a_restart() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    survives_restart(|| Ok(es_stores::LmdbStore::open(&path)?)).await
}

#[tokio::test]
async fn file_store_survives_a_restart() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    survives_restart(|| Ok(es_stores::FileStore::open(&path)?)).await
}

#[tokio::test]
async fn envelope_and_idempotency_survive_a_restart_on_lmdb() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    envelope_contract(|| {
        let path = path.clone();
        async move { Ok(es_stores::LmdbStore::open(path)?) }
    })
    .await
}

#[tokio::test]
async fn envelope_and_idempotency_survive_a_restart_on_files() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    envelope_contract(|| {
        let path = path.clone();
        async move { Ok(es_stores::FileStore::open(path)?) }
    })
    .await
}

#[tokio::test]
async fn envelope_and_idempotency_on_memory() -> Result<(), Error> {
    let store = MemoryStore::new();
    envelope_contract(|| {
        let store = store.clone();
        async move { Ok(store) }
    })
    .await
}

#[tokio::test]
async fn evolution_on_memory_store() -> Result<(), Error> {
    evolution_contract(MemoryStore::new()).await
}

#[tokio::test]
async fn evolution_on_lmdb_store() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    evolution_contract(es_stores::LmdbStore::open(dir.path().join("data"))?).await
}

#[tokio::test]
async fn evolution_on_file_store() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    evolution_contract(es_stores::FileStore::open(dir.path().join("data"))?).await
}
