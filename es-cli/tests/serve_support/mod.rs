//! What the `es serve` tests share: a seeded store (bank accounts, a transfer across two
//! accounts under one correlation id, checkpoints), the server started as a user starts it,
//! and HTTP helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::store::{CheckpointStore, ExpectedVersion, NewEvent, Store, StreamId};
use serde_json::Value;

use crate::common;

/// The seeded streams of aggregate type `bank_account` (`acc-1` ... `acc-12`).
pub const ACCOUNTS: usize = 12;
/// The correlation id of the seeded transfer.
pub const TRANSFER: &str = "transfer-7";
/// Events in the seeded store: one `Opened` per account, then the transfer's four events.
pub const EVENTS: u64 = ACCOUNTS as u64 + 4;

/// The timestamp of seeded event number `n` (1-based): one minute apart.
pub fn at(n: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + 60 * n as i64, 0).unwrap()
}

/// Seeds `store`: `bank_account/acc-1..acc-12` opened, then a transfer of 30 from acc-1 to
/// acc-2 across the streams `bank_account/acc-1`, `transfer/t-7` and `bank_account/acc-2`
/// under the correlation id [`TRANSFER`]; checkpoints `balances` at position 4 (with a state)
/// and `process:transfers` at the head.
pub async fn seed(store: &dyn Store) {
    let mut n = 0;
    let mut next = |event: NewEvent| {
        n += 1;
        event.timestamp(at(n))
    };
    for i in 1..=ACCOUNTS {
        let opened = next(
            NewEvent::new("Opened", format!(r#"{{"owner":"owner {i}"}}"#))
                .command_id(format!("open-{i}")),
        );
        store
            .append(
                &StreamId::new("bank_account", format!("acc-{i}")),
                ExpectedVersion::NoStream,
                vec![opened],
            )
            .await
            .unwrap();
    }
    let transfer = |e: NewEvent| {
        e.correlation_id(TRANSFER)
            .command_id("cmd-transfer-7")
            .tag("transfer")
    };
    let steps = [
        (
            StreamId::new("transfer", "t-7"),
            transfer(NewEvent::new(
                "TransferStarted",
                r#"{"from":"acc-1","to":"acc-2","amount":30}"#,
            )),
        ),
        (
            StreamId::new("bank_account", "acc-1"),
            transfer(NewEvent::new("Withdrawn", r#"{"amount":30}"#))
                .causation_id("evt-transfer-started")
                .metadata("ip", "10.0.0.1"),
        ),
        (
            StreamId::new("bank_account", "acc-2"),
            transfer(NewEvent::new("Deposited", r#"{"amount":30}"#)),
        ),
        (
            StreamId::new("transfer", "t-7"),
            transfer(NewEvent::new("TransferCompleted", r#"{"amount":30}"#)),
        ),
    ];
    for (stream, event) in steps {
        let event = next(event);
        store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
    }
    CheckpointStore::save(store, "balances", 4, Some(br#"{"n":4}"#.to_vec()))
        .await
        .unwrap();
    CheckpointStore::save(store, "process:transfers", EVENTS, None)
        .await
        .unwrap();
}

/// Seeds a new LMDB store at `dir` and closes it.
pub async fn seeded_lmdb(dir: &Path) {
    let store = es_stores::LmdbStore::open(dir).unwrap();
    seed(&store).await;
    store.close().await.unwrap();
}

/// `es serve` running as a user runs it; killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
}

impl Server {
    /// Starts `es --store URL serve --listen 127.0.0.1:0` and reads its address from the line
    /// it prints.
    pub fn start(url: &str) -> Server {
        let mut child = common::es()
            .args(["--store", url, "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting es serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("es serve printed no address: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that does not wait forever.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET `base + path` and its JSON, asserting the status.
pub async fn get_json(base: &str, path: &str, status: u16) -> Value {
    let res = client().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), status, "GET {path}");
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
}
