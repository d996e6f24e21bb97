//! The workloads W1–W7 of docs/benchmarks.md, the repeat workload and the transfers workload.

pub mod append;
pub mod catchup;
pub mod commands;
pub mod memory;
pub mod rehydrate;
pub mod repeat;
pub mod slow_io;
pub mod transfers;

use std::sync::Arc;

use es_core::{Kernel, Store};
use es_examples::bank::BankAccount;

use crate::error::BenchError;
use crate::report::RunResult;
use crate::stores::StoreEnv;

/// A workload of docs/benchmarks.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// W1 spread: many accounts, concurrent clients.
    W1,
    /// W2 hot: one account, one client, each command awaited.
    W2,
    /// W3 contend: concurrent clients on one account.
    W3,
    /// W4 rehydrate: restart on one long stream, without and with snapshots.
    W4,
    /// W5 catch-up: projections over a large log.
    W5,
    /// W6 memory: RSS per live aggregate, then passivation.
    W6,
    /// W7 append: store-level appends in batches of 1, 100 and 1,000.
    W7,
    /// Repeat: a command with an explicit id, and its duplicate answered from the window.
    Repeat,
    /// Transfers: money moved between accounts by the `transfers` process manager.
    Transfers,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 9] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W7,
        Workload::Repeat,
        Workload::Transfers,
    ];

    /// The id used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
            Workload::W6 => "w6",
            Workload::W7 => "w7",
            Workload::Repeat => "repeat",
            Workload::Transfers => "transfers",
        }
    }
}

/// The parameters of one run, after defaults and `--quick` are applied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// Concurrent clients (W1, W3) or appenders (W7, `0`: chosen per store and batch size).
    pub clients: usize,
    /// Commands (W1, W2, W3).
    pub commands: u64,
    /// Accounts (W1), streams (W5) or live aggregates (W6).
    pub accounts: u64,
    /// Events (W4 stream length, W5 log size, W7 events per batch size).
    pub events: u64,
    /// A small smoke run.
    pub quick: bool,
    /// Commands carry explicit command ids (W6).
    pub command_ids: bool,
    /// W5: every tenth stream is a vault, and a projection filtered on that aggregate type is
    /// timed too.
    pub w5_vaults: bool,
    /// W5: also rebuild the all-events projection while its state is read in a loop.
    pub w5_rebuild: bool,
    /// W5: also run a projection with a slow handler in 1 and this many partitions.
    pub partitions: Option<u32>,
    /// W7: append `j` goes to stream `(j * 7919) mod accounts` (W1's pattern) instead of
    /// `j mod accounts`.
    pub w7_spread: bool,
}

/// The command-line overrides of [`Params`].
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--clients`.
    pub clients: Option<usize>,
    /// `--commands`.
    pub commands: Option<u64>,
    /// `--accounts`.
    pub accounts: Option<u64>,
    /// `--events`.
    pub events: Option<u64>,
    /// `--quick`.
    pub quick: bool,
    /// `--command-ids`.
    pub command_ids: bool,
    /// `--w5-vaults`.
    pub w5_vaults: bool,
    /// `--w5-rebuild`.
    pub w5_rebuild: bool,
    /// `--partitions`.
    pub partitions: Option<u32>,
    /// `--w7-spread`.
    pub w7_spread: bool,
}

impl Params {
    /// docs/benchmarks.md's parameters for `workload` (or the smoke-run ones), with overrides.
    pub fn resolve(workload: Workload, durable: bool, o: &Overrides) -> Params {
        let q = o.quick;
        let (clients, commands, accounts, events) = match workload {
            Workload::W1 => (64, if q { 5_000 } else { 200_000 }, 10_000, 0),
            Workload::W2 => {
                let commands = match (q, durable) {
                    (false, _) => 20_000,
                    (true, false) => 2_000,
                    (true, true) => 200,
                };
                (1, commands, 1, 0)
            }
            Workload::W3 => (64, if q { 2_000 } else { 20_000 }, 1, 0),
            Workload::W4 => (1, 1, 1, if q { 10_000 } else { 100_000 }),
            Workload::W5 => (
                64,
                0,
                if q { 1_000 } else { 10_000 },
                if q { 50_000 } else { 1_000_000 },
            ),
            Workload::W6 => (64, 0, if q { 10_000 } else { 100_000 }, 0),
            Workload::W7 => (0, 0, 10_000, if q { 20_000 } else { 1_000_000 }),
            Workload::Repeat => {
                let commands = match (q, durable) {
                    (false, _) => 5_000,
                    (true, false) => 2_000,
                    (true, true) => 200,
                };
                (1, commands, 1, 0)
            }
            Workload::Transfers => (64, if q { 2_000 } else { 20_000 }, 1_000, 0),
        };
        Params {
            clients: o
                .clients
                .unwrap_or(clients)
                .max(usize::from(workload != Workload::W7)),
            commands: o.commands.unwrap_or(commands).max(1),
            accounts: o.accounts.unwrap_or(accounts).max(1),
            events: o.events.unwrap_or(events),
            quick: q,
            command_ids: o.command_ids,
            w5_vaults: o.w5_vaults,
            w5_rebuild: o.w5_rebuild,
            partitions: o.partitions,
            w7_spread: o.w7_spread,
        }
    }
}

/// Runs one workload once on a fresh store environment.
pub async fn run(workload: Workload, env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    match workload {
        Workload::W1 => commands::w1(env, p).await,
        Workload::W2 => commands::w2(env, p).await,
        Workload::W3 => commands::w3(env, p).await,
        Workload::W4 => rehydrate::w4(env, p).await,
        Workload::W5 => catchup::w5(env, p).await,
        Workload::W6 => memory::w6(env, p).await,
        Workload::W7 => append::w7(env, p).await,
        Workload::Repeat => repeat::repeat(env, p).await,
        Workload::Transfers => transfers::transfers(env, p).await,
    }
}

/// A kernel for the bank domain on `store`.
pub fn bank_kernel(
    store: &Arc<dyn Store>,
    tune: impl FnOnce(es_core::KernelBuilder) -> es_core::KernelBuilder,
) -> Result<Kernel, BenchError> {
    Ok(tune(Kernel::builder().store(store.clone()))
        .register::<BankAccount>()
        .build()?)
}

/// The id of account `n`.
pub fn account_id(n: u64) -> String {
    format!("acc-{n}")
}

/// The number of events in the store: the head position where positions are gapless (memory,
/// file, LMDB), else (PostgreSQL, whose positions carry the transaction id) a count of the log.
pub async fn count_events(
    store: &Arc<dyn Store>,
    kind: crate::stores::StoreKind,
) -> Result<u64, BenchError> {
    if kind != crate::stores::StoreKind::Postgres {
        return Ok(store.head_position().await?);
    }
    Ok(es_core::store::fold_all(&**store, .., 0u64, |n, _| n + 1).await?)
}
