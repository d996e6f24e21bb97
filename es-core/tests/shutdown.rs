//! `Kernel::shutdown` releases the store: once it has returned and the user's handles are
//! dropped, no actor, projection runner or snapshot write of the kernel holds a store clone.
//!
//! The store is an `Arc<MemoryStore>` (which implements the store traits by forwarding): the
//! kernel's clones of it are counted by `Arc::strong_count`. Each test repeats its scenario on a
//! multi-thread runtime so that a task releasing its store after `shutdown` returned shows up.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use es_core::prelude::*;
use es_core::projection::ProjectionError;
use es_core::{Kernel, RecordedEvent};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const ROUNDS: usize = 200;

/// Counts deposits; enough to keep a runner reading the log.
#[derive(Debug, Default, Clone)]
struct Deposits {
    count: u64,
}

impl Projection for Deposits {
    const NAME: &'static str = "deposits";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, _: &RecordedEvent) -> std::result::Result<(), ProjectionError> {
        self.count += 1;
        Ok(())
    }
}

fn kernel(store: &Arc<MemoryStore>) -> Result<Kernel> {
    Ok(Kernel::builder()
        .store(store.clone())
        .register::<Account>()
        .snapshot_every(2)
        .snapshots_kept(1)
        .build()?)
}

/// Asserts that only the test's own handle on the store is left.
fn assert_released(store: &Arc<MemoryStore>, round: usize) {
    assert_eq!(
        Arc::strong_count(store),
        1,
        "round {round}: something of the kernel still holds the store after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_releases_every_store_handle() -> Result {
    for round in 0..ROUNDS {
        let store = Arc::new(MemoryStore::new());
        let k = kernel(&store)?;
        let runner = k
            .projections()
            .start::<Deposits>(ProjectionOptions::default().batch_size(5))
            .await?;
        let mut tasks = Vec::new();
        for i in 0..32u64 {
            let k = k.clone();
            tasks.push(tokio::spawn(async move {
                // Three commits per aggregate: the second crosses `snapshot_every(2)`, so a
                // snapshot write is spawned right before shutdown.
                let mut last = 0;
                for _ in 0..3 {
                    let done = k
                        .dispatch::<Account>(format!("acc-{i}"), AccountCommand::Deposit(1))
                        .await?;
                    last = done.events.last().map_or(last, |e| e.position);
                }
                Ok::<u64, DispatchError<AccountError>>(last)
            }));
        }
        let mut head = 0;
        for t in tasks {
            head = head.max(t.await??);
        }
        if round % 2 == 0 {
            // Half of the rounds stop a runner that is caught up, half one still reading.
            tokio::time::timeout(Duration::from_secs(10), runner.wait_for(head)).await??;
        }
        tokio::time::timeout(Duration::from_secs(10), k.shutdown()).await?;
        drop(k);
        assert_released(&store, round);
        drop(runner);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_racing_dispatches_starts_no_actor_afterwards() -> Result {
    for round in 0..ROUNDS {
        let store = Arc::new(MemoryStore::new());
        let k = kernel(&store)?;
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let k = k.clone();
            tasks.push(tokio::spawn(async move {
                // Keep dispatching to new aggregates until the kernel refuses.
                for n in 0u64.. {
                    let id = format!("racer-{i}-{n}");
                    match k.dispatch::<Account>(id, AccountCommand::Deposit(1)).await {
                        Ok(_) => {}
                        Err(DispatchError::Shutdown) => return Ok(n),
                        Err(e) => return Err(e),
                    }
                }
                Ok(0)
            }));
        }
        tokio::task::yield_now().await;
        tokio::time::timeout(Duration::from_secs(10), k.shutdown()).await?;
        assert_eq!(
            k.live_aggregates(),
            0,
            "round {round}: an actor outlived shutdown"
        );
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t).await???;
        }
        assert_eq!(
            k.live_aggregates(),
            0,
            "round {round}: an actor started after shutdown"
        );
        drop(k);
        assert_released(&store, round);
    }
    Ok(())
}
