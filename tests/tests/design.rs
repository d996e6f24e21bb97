//! The kernel and projection contract of the design, run end to end on the project's one bank
//! domain (`es_examples::bank`) on every embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod contract;

use contract::{
    Error, envelope_contract, evolution_contract, kernel_contract, projections_contract,
};
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
async fn projections_continued_on_memory() -> Result<(), Error> {
    let store = MemoryStore::new();
    projections_contract(|| {
        let store = store.clone();
        async move { Ok(store) }
    })
    .await
}

#[tokio::test]
async fn projections_continued_on_lmdb() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    projections_contract(|| {
        let path = path.clone();
        async move { Ok(es_stores::LmdbStore::open(path)?) }
    })
    .await
}

#[tokio::test]
async fn projections_continued_on_files() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    projections_contract(|| {
        let path = path.clone();
        async move { Ok(es_stores::FileStore::open(path)?) }
    })
    .await
}

/// What `Scaled` multiplies each deposit by: its "code", which changes before a rebuild.
static SCALE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every deposit times [`SCALE`].
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Scaled {
    total: u64,
}

#[projection(name = "design_scaled")]
impl Scaled {
    #[on]
    fn deposited(&mut self, e: &Recorded<es_examples::bank::Deposited>) {
        self.total += e.payload.amount * SCALE.load(std::sync::atomic::Ordering::SeqCst);
    }
}

/// A restart in the middle of a rebuild on LMDB leaves the old projection as it was: its
/// checkpoint and state; `lookup` shows the rebuild's progress meanwhile; a rebuild that runs
/// to its end then swaps in the new state and checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_rebuild_on_lmdb_keeps_the_old_projection() -> Result<(), Error>
{
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data");
    SCALE.store(1, Ordering::SeqCst);
    let head = {
        let store = es_stores::LmdbStore::open(&path)?;
        let deposit = || NewEvent::new("Deposited", br#"{"amount":1}"#.to_vec());
        for i in 0..40 {
            let stream = StreamId::new("bank_account", format!("acc-{i}"));
            store
                .append(
                    &stream,
                    ExpectedVersion::Any,
                    (0..500).map(|_| deposit()).collect(),
                )
                .await?;
        }
        let kernel = Kernel::builder()
            .store(store.clone())
            .register::<BankAccount>()
            .build()?;
        let handle = kernel
            .projections()
            .start::<Scaled>(ProjectionOptions::default())
            .await?;
        let head = store.head_position().await?;
        handle.wait_for(head).await?;
        assert_eq!(handle.state().await.total, 20_000);

        // The code changes; a rebuild starts and the process "crashes" in its middle.
        SCALE.store(3, Ordering::SeqCst);
        let projections = kernel.projections();
        let rebuild = projections.rebuild::<Scaled>(ProjectionOptions::default().batch_size(100));
        let watch = async {
            loop {
                let status = projections.lookup(Scaled::NAME).unwrap();
                if let Some(progress) = status.rebuild
                    && progress.position >= 5_000
                {
                    assert_eq!(progress.head, head);
                    // Reads still answer the old state.
                    assert_eq!(handle.state().await.total, 20_000);
                    return progress.position;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            done = rebuild => panic!("the rebuild ended before it was interrupted: {done:?}"),
            at = watch => assert!(at < head, "interrupted at {at} of {head}"),
        }
        assert_eq!(projections.lookup(Scaled::NAME).unwrap().rebuild, None);
        kernel.shutdown().await;
        head
    };

    let store = es_stores::LmdbStore::open(&path)?;
    let checkpoint = CheckpointStore::load(&store, Scaled::NAME).await?.unwrap();
    assert_eq!(checkpoint.position, head);
    let saved: Scaled = serde_json::from_slice(&checkpoint.state.unwrap())?;
    assert_eq!(saved.total, 20_000, "the old state is intact");
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .build()?;
    let handle = kernel
        .projections()
        .start::<Scaled>(ProjectionOptions::default())
        .await?;
    assert_eq!(handle.position(), head);
    assert_eq!(handle.state().await.total, 20_000);
    let position = kernel
        .projections()
        .rebuild::<Scaled>(ProjectionOptions::default())
        .await?;
    assert_eq!(position, head);
    assert_eq!(handle.state().await.total, 60_000);
    let checkpoint = CheckpointStore::load(&store, Scaled::NAME).await?.unwrap();
    let saved: Scaled = serde_json::from_slice(&checkpoint.state.unwrap())?;
    assert_eq!((checkpoint.position, saved.total), (head, 60_000));
    kernel.shutdown().await;
    SCALE.store(1, Ordering::SeqCst);
    Ok(())
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
