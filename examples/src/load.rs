//! Load on the bank domain, for the `metrics` example and its test: deposits, withdrawals (some
//! rejected), commands with a stale expected version, two kernels ("nodes") on one store so that
//! they conflict, a working set that moves so that idle accounts are passivated and later
//! rehydrated (from snapshots), and two projections (one filtering).
//!
//! ```
//! use std::time::Duration;
//! use es_core::MemoryStore;
//! use es_examples::load::{Load, node, run, start_projections};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let nodes = [node(store.clone())?, node(store)?];
//! start_projections(&nodes[0]).await?;
//! let report = run(&nodes, &Load { duration: Some(Duration::from_millis(200)), ..Load::default() }).await;
//! assert!(report.ok > 0);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use es_core::kernel::BuildError;
use es_core::prelude::*;
use es_core::projection::ProjectionError;
use es_core::{CheckpointStore, SnapshotStore};
use serde::{Deserialize, Serialize};

use crate::bank::{Balances, BankAccount, Deposit, Withdraw, Withdrawn};

/// How many withdrawals there were (a projection that filters out every deposit).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Withdrawals {
    /// Withdrawals seen.
    pub count: u64,
}

#[projection(name = "bank_withdrawals")]
impl Withdrawals {
    #[on]
    fn withdrawn(&mut self, _e: &Recorded<Withdrawn>) {
        self.count += 1;
    }
}

/// The shape of the load.
#[derive(Debug, Clone)]
pub struct Load {
    /// Concurrent clients, each awaiting its command before sending the next.
    pub clients: usize,
    /// Accounts in all.
    pub accounts: u64,
    /// Accounts in the working set at a time; it moves on every `shift_every`.
    pub working_set: u64,
    /// How often the working set moves (the accounts left behind go idle and are passivated).
    pub shift_every: Duration,
    /// How long to run (`None`: until [`Load::stop`] is raised).
    pub duration: Option<Duration>,
    /// Raised to stop the clients.
    pub stop: Arc<AtomicBool>,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            clients: 8,
            accounts: 600,
            working_set: 200,
            shift_every: Duration::from_millis(500),
            duration: None,
            stop: Arc::default(),
        }
    }
}

/// What the clients saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Commands that committed.
    pub ok: u64,
    /// Commands answered with an error (rejections and conflicts are expected).
    pub errors: u64,
}

/// A kernel ("node") for the bank domain on `store`: snapshots every 3 events, passivation
/// after 300 ms.
pub fn node<S>(store: S) -> Result<Kernel, BuildError>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    Kernel::builder()
        .store(store)
        .snapshot_every(3)
        .passivate_after(Duration::from_millis(300))
        .register::<BankAccount>()
        .build()
}

/// Starts the balance projection and the withdrawal counter on `kernel`.
pub async fn start_projections(kernel: &Kernel) -> Result<(), ProjectionError> {
    kernel
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await?;
    kernel
        .projections()
        .start::<Withdrawals>(ProjectionOptions::default())
        .await?;
    Ok(())
}

/// A small deterministic pseudo-random sequence (xorshift), one per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `load` against `nodes` (commands alternate between them) until its duration is over or
/// its stop flag is raised.
pub async fn run(nodes: &[Kernel], load: &Load) -> Report {
    let started = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::with_capacity(load.clients);
    for client in 0..load.clients {
        let nodes = nodes.to_vec();
        let load = load.clone();
        let (ok, errors) = (ok.clone(), errors.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1));
            let mut sent = 0usize;
            loop {
                let elapsed = started.elapsed();
                if load.stop.load(Ordering::Relaxed) || load.duration.is_some_and(|d| elapsed >= d)
                {
                    return;
                }
                if nodes.is_empty() {
                    return;
                }
                let node = &nodes[sent % nodes.len()];
                sent += 1;
                let shifts = (elapsed.as_millis() / load.shift_every.as_millis().max(1)) as u64;
                let base = shifts * load.working_set / 2;
                let account = (base + rng.next() % load.working_set.max(1)) % load.accounts.max(1);
                let id = format!("acc-{account}");
                let roll = rng.next() % 100;
                let result = if roll < 70 {
                    node.dispatch::<BankAccount>(&id, Deposit { amount: 10 })
                        .await
                } else if roll < 95 {
                    // Sometimes more than the balance: rejected.
                    let amount = 1 + rng.next() % 40;
                    node.dispatch::<BankAccount>(&id, Withdraw { amount }).await
                } else {
                    // A client with a stale view of the account: a conflict.
                    let options = DispatchOptions::default().expected_version(0);
                    node.dispatch_with::<BankAccount>(&id, Deposit { amount: 1 }, options)
                        .await
                };
                match result {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for client in clients {
        // A client task never panics (every error is counted); a cancelled one just ends.
        let _ = client.await;
    }
    Report {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
    }
}
