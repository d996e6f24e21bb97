//! Crash safety through the kernel: a child process dispatches commands to a kernel on an
//! LmdbStore (with snapshots) and reports every committed command; the parent SIGKILLs it,
//! reopens the store and checks every acknowledged event, gapless sequences and positions, that
//! rehydrated state (snapshot plus replay) matches the events, and that new commands commit.
//!
//! The child is this test binary re-invoked with `ES_LMDB_KERNEL_CHILD=<dir>`.
#![cfg(feature = "lmdb")]

mod crash_common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crash_common::MARK;
use es_core::event::EventError;
use es_core::store::{EventStore, SnapshotStore, StoreError, StreamId};
use es_core::{Aggregate, Event, EventSet, Kernel};
use es_stores::LmdbStore;
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "ES_LMDB_KERNEL_CHILD";
const ACCOUNTS: u64 = 8;
const CLIENTS: u64 = 16;

type TestResult = Result<(), Box<dyn std::error::Error>>;
/// An acknowledged command: account, stream version, last position.
type Ack = (u64, u64, u64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Added {
    n: u64,
}

impl Event for Added {
    const NAME: &'static str = "Added";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq)]
enum CounterEvent {
    Added(Added),
}

impl EventSet for CounterEvent {
    const NAMES: &'static [&'static str] = &["Added"];
    fn event_type(&self) -> &'static str {
        Added::NAME
    }
    fn event_version(&self) -> u32 {
        Added::VERSION
    }
    fn encode(&self) -> Result<Vec<u8>, EventError> {
        let CounterEvent::Added(e) = self;
        e.encode_payload()
    }
    fn decode(event_type: &str, version: u32, payload: &[u8]) -> Result<Self, EventError> {
        match event_type {
            "Added" => Added::decode_payload(version, payload).map(CounterEvent::Added),
            other => Err(EventError::UnknownEvent {
                event_type: other.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Add {
    n: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Counter {
    total: u64,
    count: u64,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = Add;
    type Event = CounterEvent;
    type Error = std::convert::Infallible;

    fn handle(&self, command: Add) -> Result<Vec<CounterEvent>, Self::Error> {
        // One or two events per command.
        let mut events = vec![CounterEvent::Added(Added { n: command.n })];
        if command.n.is_multiple_of(2) {
            events.push(CounterEvent::Added(Added { n: 1 }));
        }
        Ok(events)
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Added(e) = event;
        self.total += e.n;
        self.count += 1;
    }
}

fn kernel(store: &LmdbStore) -> Result<Kernel, Box<dyn std::error::Error>> {
    Ok(Kernel::builder()
        .store(store.clone())
        .snapshot_every(7)
        .register::<Counter>()
        .build()?)
}

/// The child: dispatches forever from several clients, printing `@@kack account version
/// position` after each committed command.
#[test]
fn kernel_crash_child() -> TestResult {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = LmdbStore::open(&dir)?;
        let kernel = kernel(&store)?;
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let kernel = kernel.clone();
            clients.push(tokio::spawn(async move {
                let account = c % ACCOUNTS;
                let id = format!("c-{account}");
                for i in 1u64.. {
                    let done = kernel
                        .dispatch::<Counter>(&id, Add { n: i + c })
                        .await
                        .map_err(|e| e.to_string())?;
                    let position = done.events.last().map_or(0, |e| e.position);
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{MARK} {account} {} {position}", done.version)
                        .and_then(|()| out.flush())
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }));
        }
        for client in clients {
            client.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Runs the child until it has acknowledged `kill_after` commands, SIGKILLs it, and returns every
/// acknowledgement it printed.
fn run_and_kill(dir: &Path, kill_after: usize) -> Result<Vec<Ack>, Box<dyn std::error::Error>> {
    let dir_str = dir.to_str().ok_or("non-UTF-8 temp dir")?;
    let acks = crash_common::run_and_kill(
        "kernel_crash_child",
        &[(CHILD_ENV, dir_str)],
        kill_after,
        |_| Ok(()),
    )?;
    Ok(acks.into_iter().map(|[a, v, p]| (a, v, p)).collect())
}

async fn verify(dir: &Path, acks: &[Ack]) -> TestResult {
    let store = LmdbStore::open(dir)?;
    let all = store.read_all(1, usize::MAX).await?;
    assert_eq!(all.len() as u64, store.head_position().await?);
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position, i as u64 + 1, "positions are gapless");
        let v = versions.entry(event.stream.clone()).or_default();
        *v += 1;
        assert_eq!(
            event.sequence, *v,
            "sequences of {} are gapless",
            event.stream
        );
    }
    for &(account, version, position) in acks {
        let stream = StreamId::new(Counter::TYPE, format!("c-{account}"));
        let got = store.read_stream(&stream, version, 1).await?;
        let event = got
            .first()
            .ok_or_else(|| format!("acknowledged {stream} version {version} is missing"))?;
        assert_eq!(
            event.position, position,
            "acknowledged position of {stream}"
        );
    }
    let kernel = kernel(&store)?;
    for account in 0..ACCOUNTS {
        let id = format!("c-{account}");
        let stream = StreamId::new(Counter::TYPE, &id);
        let events = store.read_stream(&stream, 1, usize::MAX).await?;
        let mut expected = Counter::default();
        for event in &events {
            expected.apply(&CounterEvent::from_recorded(event)?);
        }
        if let Some(snapshot) = store.load_latest(&stream).await? {
            assert!(
                snapshot.version <= events.len() as u64,
                "snapshot ahead of its stream"
            );
        }
        let state = kernel
            .state::<Counter>(&id)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(
            (state.total, state.count),
            (expected.total, expected.count),
            "rehydrated state of {id}"
        );
        let done = kernel
            .dispatch::<Counter>(&id, Add { n: 1 })
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(done.version, events.len() as u64 + 1);
    }
    kernel.shutdown().await;
    Ok(())
}

#[test]
fn sigkill_through_the_kernel_loses_no_acknowledged_command() -> TestResult {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for iteration in 0..3 {
        let acks = run_and_kill(dir.path(), 150 + iteration * 211)?;
        assert!(!acks.is_empty());
        runtime.block_on(verify(dir.path(), &acks))?;
    }
    // The store is closed once the kernel and every handle are gone.
    match LmdbStore::open(dir.path()) {
        Ok(_) => Ok(()),
        Err(StoreError::Locked(e)) => Err(format!("store still locked: {e}").into()),
        Err(e) => Err(e.into()),
    }
}
