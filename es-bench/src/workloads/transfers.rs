//! Transfers: money moved between accounts by the `transfers` process manager. `clients`
//! requesters (each on its own transfer desk) ask for `commands` transfers of 1 between
//! `accounts` accounts; each transfer is three commits (the request, the withdrawal, the
//! deposit). Measured: completed transfers per second (from the first request until the last
//! deposit was handled by the manager), and the lag from each `TransferRequested` to its deposit
//! (the two events' timestamps: the kernel's clock when each command was decided).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use es_core::DispatchOptions;
use es_core::projection::ProjectionOptions;
use es_examples::bank::{BankAccount, Deposit, RequestTransfer, Transfer, TransferDesk};
use tokio::task::JoinSet;

use super::{Params, account_id, bank_kernel};
use crate::error::BenchError;
use crate::report::{RunResult, latency_histogram, latency_json, progress, rate};
use crate::stores::StoreEnv;

/// The manager's page size: each page's rounds wait for their slowest commit, so larger pages
/// keep more transfers in flight per round trip.
const BATCH: usize = 4096;

/// Each account's opening balance: no transfer is refused.
const SEED: u64 = 1_000_000_000;

/// The transfers workload (see the module docs).
pub async fn transfers(env: &StoreEnv, p: &Params) -> Result<RunResult, BenchError> {
    let store = env.open().await?;
    let kernel = bank_kernel(&store, |b| b.register::<TransferDesk>())?;
    let result = async {
        for n in 0..p.accounts {
            kernel
                .dispatch::<BankAccount>(account_id(n), Deposit { amount: SEED })
                .await
                .map_err(|e| BenchError::Dispatch(format!("seeding: {e}")))?;
        }
        let manager = kernel
            .process_managers()
            .start::<Transfer>(ProjectionOptions::default().batch_size(BATCH))
            .await
            .map_err(|e| BenchError::Dispatch(format!("starting the manager: {e}")))?;
        let seeded = store.head_position().await?;
        manager
            .wait_for(seeded)
            .await
            .map_err(|e| BenchError::Dispatch(e.to_string()))?;
        let bar = progress(p.commands, "transfers: requests");
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut set = JoinSet::new();
        for client in 0..p.clients {
            let (kernel, next, bar) = (kernel.clone(), next.clone(), bar.clone());
            let (commands, accounts) = (p.commands, p.accounts);
            set.spawn(async move {
                let desk = format!("desk-{client}");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= commands {
                        return Ok::<(), String>(());
                    }
                    let from = i.wrapping_mul(7919) % accounts;
                    let to = (from + 1 + i % (accounts - 1).max(1)) % accounts;
                    kernel
                        .dispatch_with::<TransferDesk>(
                            &desk,
                            RequestTransfer {
                                from: account_id(from),
                                to: account_id(to),
                                amount: 1,
                            },
                            DispatchOptions::default().command_id(format!("transfer-{i}")),
                        )
                        .await
                        .map_err(|e| format!("request {i}: {e}"))?;
                    bar.inc(1);
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done?.map_err(BenchError::Dispatch)?;
        }
        let requested = start.elapsed();
        bar.finish_and_clear();
        // Settle: every transfer's deposit handled (the manager has no live instance left).
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let head = store.head_position().await?;
            manager
                .wait_for(head)
                .await
                .map_err(|e| BenchError::Dispatch(e.to_string()))?;
            if manager.instances().await == 0 && store.head_position().await? == head {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Dispatch("the transfers did not settle".into()));
            }
        }
        let elapsed = start.elapsed();
        let status = manager.status();
        Ok::<_, BenchError>((requested, elapsed, status.commands_sent, status.rejections))
    }
    .await;
    kernel.shutdown().await;
    let (requested, elapsed, commands_sent, rejections) = result?;

    // The lag of each transfer: its request's timestamp to its deposit's.
    let mut requests: HashMap<String, i64> = HashMap::new();
    let mut lag = latency_histogram();
    let mut deposits = 0u64;
    let mut total = 0i128;
    es_core::store::fold_all(&*store, 1.., (), |(), e| {
        let micros = e.timestamp.timestamp_micros();
        let Some(key) = e.correlation_id() else {
            return;
        };
        match e.event_type.as_str() {
            "bank.transfer_requested" => {
                requests.insert(key.to_owned(), micros);
            }
            "Deposited" => {
                if let Some(at) = requests.get(key) {
                    deposits += 1;
                    lag.saturating_record(u64::try_from((micros - at).max(1)).unwrap_or(1));
                }
            }
            _ => {}
        }
    })
    .await?;
    let kernel = bank_kernel(&store, |b| b)?;
    for n in 0..p.accounts {
        total += i128::from(
            kernel
                .state::<BankAccount>(account_id(n))
                .await
                .map_err(|e| BenchError::Dispatch(e.to_string()))?
                .balance,
        );
    }
    kernel.shutdown().await;

    let mut r = RunResult::default();
    r.set("transfers", p.commands);
    r.set("requesters", p.clients as u64);
    r.set("accounts", p.accounts);
    r.set("completed_transfers_per_s", rate(deposits, elapsed));
    r.set("requests_per_s", rate(p.commands, requested));
    r.set("elapsed_ms", elapsed.as_millis() as u64);
    r.set("lag_requested_to_deposit", latency_json(&lag));
    r.set("commands_sent", commands_sent);
    r.set("rejections", rejections);
    let expected = i128::from(SEED) * i128::from(p.accounts);
    r.check(deposits == p.commands, || {
        format!(
            "transfers: {deposits} deposits for {} transfers",
            p.commands
        )
    });
    r.check(total == expected && rejections == 0, || {
        format!("transfers: total balance {total}, expected {expected}; {rejections} rejections")
    });
    Ok(r)
}
