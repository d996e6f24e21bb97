//! Changing an event: replays `bank.withdrawn` events written by release 1 (version 1, no
//! channel; `examples/evolution/withdrawn_v1.jsonl`) with release 2's `Withdrawn` (version 2,
//! with a channel), then records a new withdrawal at version 2 next to them.
//!
//! ```text
//! cargo run --example evolution
//! cargo run --example evolution -- --write-fixture examples/evolution/withdrawn_v1.jsonl
//! ```
//!
//! `--write-fixture` writes the fixture with release 1's types (`es_examples::bank`), through a
//! kernel on a memory store, exactly as that release stored them.

use es_core::prelude::*;
use es_core::projection;
use es_examples::bank;
use es_examples::evolution::{
    BankAccount, ChannelTotals, FixtureLine, Withdraw, load_fixture, read_fixture,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The events release 1 stored, as committed next to this file.
const FIXTURE: &str = include_str!("withdrawn_v1.jsonl");

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => replay().await,
        Some("--write-fixture") => {
            let path = args.next().ok_or("--write-fixture needs a file")?;
            write_fixture(&path).await
        }
        Some(other) => Err(format!(
            "unknown argument `{other}`; usage: evolution [--write-fixture FILE]"
        )
        .into()),
    }
}

/// Release 2 reads release 1's events, and writes its own next to them.
#[allow(clippy::print_stdout)] // the example's output
async fn replay() -> Result<(), Error> {
    let store = MemoryStore::new();
    load_fixture(&store, read_fixture(FIXTURE)?).await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .build()?;
    let account = kernel.state::<BankAccount>("acc-1").await?;
    println!(
        "acc-1 from release 1's events: balance {}, withdrawn by channel {:?}",
        account.balance, account.withdrawn_by_channel
    );
    let done = kernel
        .dispatch::<BankAccount>(
            "acc-1",
            Withdraw {
                amount: 5,
                channel: "atm".into(),
            },
        )
        .await?;
    let stored = &done.events[0];
    println!(
        "new withdrawal stored as `{}` version {}: {}",
        stored.event_type,
        stored.event_version,
        String::from_utf8_lossy(&stored.payload)
    );
    let totals: ChannelTotals = projection::run_once(&store).await?;
    println!(
        "withdrawn by channel, all accounts: {:?}",
        totals.by_channel
    );
    kernel.shutdown().await;
    Ok(())
}

/// Writes the fixture with release 1's types.
#[allow(clippy::print_stdout)] // the example's output
async fn write_fixture(path: &str) -> Result<(), Error> {
    let store = MemoryStore::new();
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<bank::BankAccount>()
        .build()?;
    for (account, deposit, withdrawals) in [("acc-1", 100, &[10, 20][..]), ("acc-2", 50, &[7][..])]
    {
        kernel
            .dispatch::<bank::BankAccount>(account, bank::Deposit { amount: deposit })
            .await?;
        for &amount in withdrawals {
            kernel
                .dispatch::<bank::BankAccount>(account, bank::Withdraw { amount })
                .await?;
        }
    }
    kernel.shutdown().await;
    let mut out = String::new();
    for event in store.read_all(1, usize::MAX).await? {
        let line = FixtureLine {
            account: event.stream.aggregate_id.clone(),
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            payload: serde_json::from_slice(&event.payload)?,
        };
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    std::fs::write(path, out)?;
    println!("wrote {path}");
    Ok(())
}
