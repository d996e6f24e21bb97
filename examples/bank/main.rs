//! The original bank demo: deposit 100, withdraw 10, withdraw 1000 (rejected: insufficient
//! funds), deposit 0 (rejected: amounts must be positive); then two transfers run by the
//! `transfers` process manager (one completes, one is refused by a closed account and
//! compensated); then a restart that shows the state survives.
//!
//! ```text
//! cargo run --example bank                       # LmdbStore under ./data (the default)
//! cargo run --example bank -- --store memory     # or file, or any store URL: lmdb:DIR, postgres://...
//! cargo run --example bank -- --data /tmp/bank   # another data directory
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use es_core::prelude::*;
use es_core::process::ProcessHandle;
use es_core::{Store, projection};
use es_examples::bank::{
    Balances, BankAccount, BankError, Close, Deposit, RequestTransfer, Transfer, TransferDesk,
    Withdraw,
};
use es_examples::cli::StoreChoice;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    store: StoreChoice,
}

fn parse_args() -> Result<Args, String> {
    let mut store = "lmdb".to_owned();
    let mut data = PathBuf::from("./data");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => store = args.next().ok_or("--store needs a value")?,
            "--data" => data = args.next().ok_or("--data needs a directory")?.into(),
            "-h" | "--help" => {
                return Err(
                    "usage: bank [--store memory|lmdb|file|STORE_URL] [--data DIR]   (STORE_URL: lmdb:DIR, file:DIR, postgres://...)".into(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Args {
        store: StoreChoice::parse(&store, &data)?,
    })
}

fn build_kernel(store: Arc<dyn Store>) -> Result<Kernel, Error> {
    Ok(Kernel::builder()
        .store(store)
        .snapshot_every(10)
        .passivate_after(Duration::from_secs(5))
        .register::<BankAccount>()
        .register::<TransferDesk>()
        .build()?)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[allow(clippy::print_stdout)]
async fn run(args: Args) -> Result<(), Error> {
    let store = args.store.open().await?;
    println!("store: {} ({})", args.store.name(), args.store.url());
    let kernel = build_kernel(store.clone())?;
    let id = "acc-1";
    let before = kernel.state::<BankAccount>(id).await?.balance;
    println!("{id}: balance at start {before}");

    let done = kernel
        .dispatch::<BankAccount>(id, Deposit { amount: 100 })
        .await?;
    println!(
        "deposit 100     -> ok, version {}, balance {}",
        done.version,
        kernel.state::<BankAccount>(id).await?.balance
    );
    let done = kernel
        .dispatch::<BankAccount>(id, Withdraw { amount: 10 })
        .await?;
    println!(
        "withdraw 10     -> ok, version {}, balance {}",
        done.version,
        kernel.state::<BankAccount>(id).await?.balance
    );
    match kernel
        .dispatch::<BankAccount>(id, Withdraw { amount: 1_000 })
        .await
    {
        Err(DispatchError::Rejected(BankError::InsufficientFunds { balance, requested })) => {
            println!(
                "withdraw 1000   -> rejected: insufficient funds (balance {balance}, requested {requested})"
            );
        }
        other => return Err(format!("withdraw 1000 should be rejected, got {other:?}").into()),
    }

    match kernel
        .dispatch::<BankAccount>(id, Deposit { amount: 0 })
        .await
    {
        Err(DispatchError::Rejected(BankError::ZeroAmount)) => {
            println!("deposit 0       -> rejected: the amount must be positive");
        }
        other => return Err(format!("deposit 0 should be rejected, got {other:?}").into()),
    }

    transfers(&kernel, &store, id).await?;

    let balances = kernel
        .projections()
        .start::<Balances>(ProjectionOptions::default())
        .await?;
    let head = store.head_position().await?;
    balances.wait_for(head).await?;
    let final_balance = kernel.state::<BankAccount>(id).await?.balance;
    println!(
        "final balance {final_balance}; balance projection says {:?}",
        balances.state().await.by_account.get(id)
    );
    kernel.shutdown().await;
    drop((kernel, balances));

    // A restart: a new kernel (and, for durable stores, a freshly opened store) rebuilds the
    // account from what was stored.
    let store = if args.store.is_durable() {
        drop(store);
        args.store.open().await?
    } else {
        store
    };
    let kernel = build_kernel(store.clone())?;
    let restored = kernel.state::<BankAccount>(id).await?.balance;
    let projected: Balances = projection::run_once(&store).await?;
    println!(
        "after restart: balance {restored} (projection from position 0: {:?}){}",
        projected.by_account.get(id),
        if args.store.is_durable() {
            ""
        } else {
            " - the memory store lives only as long as the process"
        }
    );
    if restored != final_balance {
        return Err(format!("the restart lost state: {restored} != {final_balance}").into());
    }
    kernel.shutdown().await;
    Ok(())
}

/// Two transfers through the `transfers` process manager: `from` to a second account (it
/// completes), and `from` to a closed account (the deposit is refused, the money comes back).
#[allow(clippy::print_stdout)]
async fn transfers(kernel: &Kernel, store: &Arc<dyn Store>, from: &str) -> Result<(), Error> {
    let (to, closed) = ("acc-2", "acc-closed");
    kernel.dispatch::<BankAccount>(closed, Close).await?;
    let manager: ProcessHandle<Transfer> = kernel
        .process_managers()
        .start::<Transfer>(ProjectionOptions::default())
        .await?;
    let balances = |label: &'static str| async move {
        let mut line = String::new();
        for id in [from, to, closed] {
            let balance = kernel.state::<BankAccount>(id).await?.balance;
            line.push_str(&format!(" {id}={balance}"));
        }
        println!("{label:<17}->{line}");
        Ok::<_, Error>(())
    };
    balances("before transfers").await?;
    for (target, amount) in [(to, 25), (closed, 15)] {
        kernel
            .dispatch::<TransferDesk>(
                "desk",
                RequestTransfer {
                    from: from.to_owned(),
                    to: target.to_owned(),
                    amount,
                },
            )
            .await?;
        settle(&manager, store).await?;
        let status = manager.status();
        println!(
            "transfer {amount} {from} -> {target}: {} commands sent, {} rejected so far, {} in flight",
            status.commands_sent,
            status.rejections,
            manager.instances().await
        );
        balances("  balances").await?;
    }
    kernel.process_managers().stop("transfers").await?;
    Ok(())
}

/// Waits until the manager has handled the whole log and no transfer is in flight (each step's
/// commands write events the next step handles).
async fn settle(manager: &ProcessHandle<Transfer>, store: &Arc<dyn Store>) -> Result<(), Error> {
    loop {
        let head = store.head_position().await?;
        manager.wait_for(head).await?;
        if manager.instances().await == 0 && store.head_position().await? == head {
            return Ok(());
        }
    }
}
