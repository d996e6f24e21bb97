//! What the `es serve` tests share: a seeded store (bank accounts, a transfer across two
//! accounts under one correlation id, checkpoints), the server started as a user starts it,
//! and HTTP helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::store::{CheckpointStore, EventStore, ExpectedVersion, NewEvent, Store, StreamId};
use es_stores::{OpenOptions, OpenedStore};
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

impl Server {
    /// Sends SIGINT (what Ctrl-C sends) and waits up to 10 s for the exit status.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -INT failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "es serve did not stop within 10 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The positions of a JSON array of events.
pub fn positions(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
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

/// Reads server-sent events from `res` until `n` messages named `event` came; their data.
pub async fn read_events(res: &mut reqwest::Response, n: usize) -> Vec<(u64, Value)> {
    let mut buffer = String::new();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while found.len() < n {
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events came: {buffer:?}", found.len()))
            .unwrap()
            .expect("the event stream ended");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut name = "message";
            let (mut id, mut data) = (None, None);
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = if v.trim() == "event" {
                        "event"
                    } else {
                        "other"
                    };
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                }
            }
            if name == "event" {
                found.push((id.unwrap(), data.unwrap()));
            }
        }
    }
    found
}

/// The ids (positions) of server-sent events read by [`read_events`].
fn ids(events: &[(u64, Value)]) -> Vec<u64> {
    events.iter().map(|(id, _)| *id).collect()
}

/// Serves `url` in this process and follows the log while events are appended: new events
/// arrive (filtered), `Last-Event-ID` resumes after a position. With `other_node`, the events
/// are appended through a second store opened on the same URL (another application node),
/// else through the store being served.
pub async fn follow_while_writing(url: &str, other_node: bool) {
    let options = OpenOptions::default().create(true);
    let opened = OpenedStore::open(url, &options).await.unwrap();
    seed(&*opened.store()).await;
    let seeded: Vec<u64> = opened
        .store()
        .read_all(1, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(seeded.len() as u64, EVENTS);
    let writer = if other_node {
        Some(OpenedStore::open(url, &options).await.unwrap())
    } else {
        None
    };
    let store = writer.as_ref().unwrap_or(&opened).store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(es_cli::serve::serve(opened.clone(), listener, async {
        let _ = stopped.await;
    }));
    let http = client();
    // From the head on (the default): only what is committed after the request.
    let mut all = http.get(format!("{base}/api/follow")).send().await.unwrap();
    assert_eq!(all.status().as_u16(), 200);
    assert!(
        all.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut deposits = http
        .get(format!(
            "{base}/api/follow?type=Deposited&aggregate=bank_account"
        ))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acc3 = StreamId::new("bank_account", "acc-3");
    let first = store
        .append(
            &acc3,
            ExpectedVersion::Exact(1),
            vec![
                NewEvent::new("Deposited", r#"{"amount":5}"#).correlation_id("live-1"),
                NewEvent::new("Withdrawn", r#"{"amount":1}"#),
            ],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = store
        .append(
            &acc3,
            ExpectedVersion::Exact(3),
            vec![NewEvent::new("Deposited", r#"{"amount":7}"#)],
        )
        .await
        .unwrap();
    // Positions as the store assigned them (PostgreSQL's are not 1, 2, 3, ...).
    let new: Vec<u64> = first
        .events
        .iter()
        .chain(&second.events)
        .map(|e| e.position)
        .collect();
    let got = read_events(&mut all, 3).await;
    assert_eq!(ids(&got), new, "the SSE id is the position");
    assert_eq!(got[0].1["type"], "Deposited");
    assert_eq!(got[0].1["correlation_id"], "live-1");
    assert_eq!(got[0].1["payload"], serde_json::json!({"amount": 5}));
    assert_eq!(got[1].1["type"], "Withdrawn");
    let filtered = read_events(&mut deposits, 2).await;
    assert_eq!(ids(&filtered), [new[0], new[2]], "only deposits");
    // The log, newest first, over the store's own positions.
    let log = get_json(&base, "/api/log?limit=2", 200).await;
    assert_eq!(positions(&log["events"]), [new[2], new[1]]);
    assert_eq!(log["next_before"], new[1]);
    let opened_log = get_json(&base, "/api/log?type=Opened&limit=100", 200).await;
    let mut expected = seeded[..ACCOUNTS].to_vec();
    expected.reverse();
    assert_eq!(positions(&opened_log["events"]), expected);
    // A reconnecting EventSource sends the last id it saw and gets what came after it.
    let mut resumed = http
        .get(format!("{base}/api/follow"))
        .header("last-event-id", new[0].to_string())
        .send()
        .await
        .unwrap();
    let again = read_events(&mut resumed, 2).await;
    assert_eq!(ids(&again), [new[1], new[2]]);
    let mut from = http
        .get(format!("{base}/api/follow?from={}", seeded[14]))
        .send()
        .await
        .unwrap();
    let replayed = read_events(&mut from, 2).await;
    assert_eq!(ids(&replayed), seeded[14..16], "from a position of the log");
    drop((all, deposits, resumed));
    // Told to stop, the server ends the live streams still open and stops.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops when told, though a browser still follows the log")
        .unwrap()
        .unwrap();
    let drained = async {
        // What was sent before the stop, then the end.
        while let Ok(Some(_)) = from.chunk().await {}
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the open stream ends");
    if let Some(writer) = writer {
        writer.close().await.unwrap();
    }
    opened.close().await.unwrap();
}
