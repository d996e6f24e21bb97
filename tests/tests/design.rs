//! The code of DESIGN.md, as written there, run end to end on every embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit {
    pub amount: u64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw {
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited {
    pub amount: u64,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 1)] // optional: name defaults to the type's name, version to 1
pub struct Withdrawn {
    pub amount: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    pub balance: u64,
}

#[aggregate(name = "bank_account", error = BankError)]
impl BankAccount {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, BankError> {
        if cmd.amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: cmd.amount,
            });
        }
        Ok(Withdrawn { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Balances {
    pub by_account: BTreeMap<String, i64>,
}

#[projection(name = "balances")]
impl Balances {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        *self
            .by_account
            .entry(e.stream.aggregate_id.clone())
            .or_default() += e.payload.amount as i64;
    }
    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        *self
            .by_account
            .entry(e.stream.aggregate_id.clone())
            .or_default() -= e.payload.amount as i64;
    }
}

type Error = Box<dyn std::error::Error>;

/// The kernel section of DESIGN.md, on any store.
async fn kernel_contract<S>(store: S) -> Result<(), Error>
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
    let status = kernel.projections().lookup("balances");
    assert!(status.is_some());
    kernel.projections().stop("balances").await?;
    kernel.shutdown().await;
    assert_eq!(kernel.live_aggregates(), 0);
    Ok(())
}

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
    let checkpoint = CheckpointStore::load(&store, "balances").await?.unwrap();
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

/// The same contract on PostgreSQL, in a schema of its own (needs `ES_PG_URL`).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn design_on_postgres_store() -> Result<(), Error> {
    let Ok(url) = std::env::var("ES_PG_URL") else {
        eprintln!("design_on_postgres_store skipped: ES_PG_URL is not set");
        return Ok(());
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await?;
    let schema = format!(
        "es_design_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let store = es_stores::PostgresStore::builder(pool.clone())
        .schema(&schema)
        .build()
        .await?;
    let result = kernel_contract(store).await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await?;
    result
}
