//! A process manager follows the log as a projection does, on a checkpoint store that elects
//! one runner per name: a checkpoint load that fails for a moment, after the runner takes its
//! lease over, is tried again rather than stopping the runner; a runner started at a given
//! position keeps it when it first takes the lease.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{Account, AccountCommand};
use es_core::prelude::*;
use es_core::process::CHECKPOINT_PREFIX;
use es_core::projection::{ProjectionError, ProjectionPhase};
use es_core::store::{Checkpoint, Lease, RunnerLease, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One instance per deposit (keyed by its correlation id), counting what it saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Audit {
    deposits: u32,
}

impl ProcessManager for Audit {
    const NAME: &'static str = "audit";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn starts(_: &RecordedEvent) -> bool {
        true
    }
    fn handle(&mut self, _: &RecordedEvent, _: &mut Commands) -> Result<(), ProjectionError> {
        self.deposits += 1;
        Ok(())
    }
}

/// Checkpoints in a `MemoryStore`, whose next loads fail as an unreachable database does, and
/// whose lease is held elsewhere until the test frees it.
#[derive(Clone, Default)]
struct FlakyCheckpoints {
    inner: MemoryStore,
    /// Fails this many loads, then succeeds.
    fail_loads: Arc<AtomicUsize>,
    /// Loads asked for, failed or not.
    loads: Arc<AtomicUsize>,
    /// Whether the next `try_lease` gets the lease.
    free: Arc<AtomicBool>,
    /// Keeps the lease handed out from being lost.
    holder: Arc<parking_lot::Mutex<Option<watch::Sender<bool>>>>,
}

#[async_trait]
impl CheckpointStore for FlakyCheckpoints {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_loads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable(
                "test double: the database is restarting".into(),
            ));
        }
        CheckpointStore::load(&self.inner, name).await
    }
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        CheckpointStore::save(&self.inner, name, position, state).await
    }
    async fn try_lease(&self, _: &str) -> Result<Lease, StoreError> {
        if !self.free.swap(false, Ordering::SeqCst) {
            return Ok(Lease::HeldElsewhere);
        }
        let (lost, lost_rx) = watch::channel(false);
        *self.holder.lock() = Some(lost);
        Ok(Lease::Acquired(RunnerLease::new(lost_rx, ())))
    }
}

/// A kernel on `checkpoints` whose log holds `deposits` deposits, and a checkpoint at 0 saved
/// by a previous holder of the lease; returns the position of the last deposit.
async fn kernel_with(checkpoints: &FlakyCheckpoints, deposits: u64) -> (Kernel, u64) {
    let kernel = Kernel::builder()
        .event_store(MemoryStore::new())
        .checkpoint_store(checkpoints.clone())
        .register::<Account>()
        .build()
        .unwrap();
    let mut last = 0;
    for amount in 1..=deposits {
        let done = kernel
            .dispatch::<Account>("a-1", AccountCommand::Deposit(amount))
            .await
            .unwrap();
        last = done.events[0].position;
    }
    CheckpointStore::save(
        &checkpoints.inner,
        &format!("{CHECKPOINT_PREFIX}audit"),
        0,
        None,
    )
    .await
    .unwrap();
    (kernel, last)
}

#[tokio::test]
async fn a_process_manager_retries_a_checkpoint_load_that_fails_for_a_moment() {
    let checkpoints = FlakyCheckpoints::default();
    let (kernel, position) = kernel_with(&checkpoints, 1).await;

    let audit = kernel
        .process_managers()
        .start::<Audit>(ProjectionOptions::default().poll_interval(Duration::from_millis(20)))
        .await
        .unwrap();
    assert!(audit.status().standby);
    assert_eq!(
        checkpoints.loads.load(Ordering::SeqCst),
        1,
        "start loads once"
    );

    // The lease comes free while the database is unreachable: the runner takes it over and
    // loads the checkpoint through three failures.
    checkpoints.fail_loads.store(3, Ordering::SeqCst);
    checkpoints.free.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), audit.wait_for(position))
        .await
        .expect("the runner takes over and catches up")
        .expect("a failing checkpoint load is retried, not fatal");

    assert_eq!(checkpoints.fail_loads.load(Ordering::SeqCst), 0);
    assert_eq!(checkpoints.loads.load(Ordering::SeqCst), 1 + 4);
    let status = audit.status();
    assert!(!status.standby);
    assert!(
        !matches!(status.phase, ProjectionPhase::Stopped { .. }),
        "{status:?}"
    );
    assert_eq!(status.events_handled, 1);
    assert_eq!(audit.instances().await, 1);
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_process_manager_started_at_a_position_keeps_it_when_it_takes_the_lease() {
    let checkpoints = FlakyCheckpoints::default();
    let (kernel, second) = kernel_with(&checkpoints, 2).await;

    let audit = kernel
        .process_managers()
        .start::<Audit>(
            ProjectionOptions::default()
                .start_position(second)
                .poll_interval(Duration::from_millis(20)),
        )
        .await
        .unwrap();
    checkpoints.free.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), audit.wait_for(second))
        .await
        .expect("the runner takes over and catches up")
        .unwrap();
    // Only the event at the given position was handled: the checkpoint (at 0) was not reloaded.
    assert_eq!(audit.status().events_handled, 1);
    assert_eq!(checkpoints.loads.load(Ordering::SeqCst), 0);
    kernel.shutdown().await;
}
