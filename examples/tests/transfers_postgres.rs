//! One active `transfers` runner among processes sharing a PostgreSQL store: two child
//! processes run kernels with the manager on one schema; one holds the lease (an advisory
//! lock), the other stands by. The parent requests transfers, SIGKILLs the active child midway,
//! and checks that the standby takes over within seconds and finishes every transfer exactly
//! once.
//!
//! Needs `ES_PG_URL` (fails without it). The children are this test binary re-invoked with
//! `ES_PM_PG_CHILD=<url with schema>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use es_core::prelude::*;
use es_core::{Store, process::ProcessHandle};
use es_examples::bank::*;
use sqlx::Connection;

const CHILD_ENV: &str = "ES_PM_PG_CHILD";
const TRANSFERS: usize = 60;

fn kernel(store: std::sync::Arc<dyn Store>) -> Kernel {
    Kernel::builder()
        .store(store)
        .register::<BankAccount>()
        .register::<TransferDesk>()
        .build()
        .unwrap()
}

#[test]
fn takeover_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = es_stores::open(&url).await.unwrap();
        let kernel = kernel(store);
        let manager: ProcessHandle<Transfer> = kernel
            .process_managers()
            .start::<Transfer>(ProjectionOptions::default().batch_size(4))
            .await
            .unwrap();
        let mut announced = false;
        loop {
            let status = manager.status();
            if !announced && !status.standby && status.position > 0 {
                println!("@@active {}", std::process::id());
                std::io::stdout().flush().unwrap();
                announced = true;
            }
            if std::env::var_os("ES_PM_PG_DEBUG").is_some() {
                eprintln!("{status:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

fn spawn(url: &str, tx: mpsc::Sender<u32>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "takeover_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("ES_PM_PG_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // The harness prints `test takeover_child ... ` first, on the same line.
            if let Some(at) = line.find("@@active ") {
                let _ = tx.send(line[at + 9..].trim().parse().unwrap_or(0));
            }
        }
    });
    child
}

async fn pg_url() -> String {
    let url = match std::env::var("ES_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ES_PG_URL is not set: this test needs a PostgreSQL server, e.g. \
             ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test"
        ),
    };
    let conn = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url))
        .await
        .expect("PostgreSQL did not answer within 10 s at ES_PG_URL")
        .expect("PostgreSQL cannot be reached at ES_PG_URL");
    let _ = conn.close().await;
    url
}

#[test]
fn the_standby_takes_over_when_the_active_process_dies() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = runtime.block_on(pg_url());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!(
        "pm_takeover_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema={schema}");
    let store = runtime.block_on(es_stores::open(&url)).unwrap();
    let kernel = {
        let _entered = runtime.enter();
        kernel(store.clone())
    };
    runtime.block_on(async {
        for a in ["a", "b", "c"] {
            kernel
                .dispatch::<BankAccount>(a, Deposit { amount: 1_000 })
                .await
                .unwrap();
        }
    });

    let (tx, rx) = mpsc::channel();
    let mut children = vec![spawn(&url, tx.clone()), spawn(&url, tx)];
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no child became active");
    // Only one is active: the other stays a standby.
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "two active runners"
    );

    let request = |i: usize| {
        let kernel = kernel.clone();
        async move {
            let (from, to) = [("a", "b"), ("b", "c"), ("c", "a")][i % 3];
            kernel
                .dispatch_with::<TransferDesk>(
                    "desk",
                    RequestTransfer {
                        from: from.into(),
                        to: to.into(),
                        amount: 1 + i as u64,
                    },
                    DispatchOptions::default().command_id(format!("t-{i}")),
                )
                .await
                .unwrap();
        }
    };
    runtime.block_on(async {
        for i in 0..TRANSFERS / 2 {
            request(i).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    // Kill the active one (SIGKILL) while it works.
    let active = children
        .iter()
        .position(|c| c.id() == first)
        .expect("the active child is one of ours");
    let mut dead = children.remove(active);
    dead.kill().unwrap();
    dead.wait().unwrap();
    let killed_at = Instant::now();
    runtime.block_on(async {
        for i in TRANSFERS / 2..TRANSFERS {
            request(i).await;
        }
    });
    let second = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the standby did not take over");
    assert_ne!(second, first);
    let takeover = killed_at.elapsed();
    println!("takeover after {takeover:?}");
    assert!(takeover < Duration::from_secs(15), "took {takeover:?}");

    // The survivor finishes everything: each transfer withdrawn and deposited exactly once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let events = runtime.block_on(store.read_all(1, 100_000)).unwrap();
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        for e in &events {
            let Some(key) = e.correlation_id() else {
                continue;
            };
            if !key.starts_with("t-") {
                continue;
            }
            let entry = counts.entry(key.to_owned()).or_default();
            match e.event_type.as_str() {
                "bank.withdrawn" => entry.0 += 1,
                "Deposited" => entry.1 += 1,
                _ => {}
            }
        }
        let done = counts.len() == TRANSFERS && counts.values().all(|c| c.1 >= 1);
        if done || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for mut child in children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(counts.len(), TRANSFERS, "every transfer was handled");
    for (key, c) in &counts {
        assert_eq!(*c, (1, 1), "transfer {key}: withdrawals and deposits");
    }
    // Read by a fresh kernel: this one's live actors may still hold the states they had before
    // the children wrote (a live actor learns of other nodes' writes at its next append).
    let total: u64 = runtime.block_on(async {
        let fresh = crate::kernel(store.clone());
        let mut total = 0;
        for a in ["a", "b", "c"] {
            total += fresh.state::<BankAccount>(a).await.unwrap().balance;
        }
        fresh.shutdown().await;
        total
    });
    assert_eq!(total, 3_000, "money is conserved");
    runtime.block_on(async {
        kernel.shutdown().await;
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .unwrap();
    });
}
