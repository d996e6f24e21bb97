//! Two application nodes (two kernels, each on its own pool and PostgresStore) hammer the same
//! accounts concurrently. Every command is answered; final balances equal the accepted
//! deposits; no stream has a duplicate or missing sequence; a reader of the global log sees
//! every event exactly once. Built only with the `postgres` feature; fails without a server at
//! `ES_PG_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_common;

use std::collections::BTreeMap;
use std::time::Duration;

use es_core::event::EventError;
use es_core::{
    Aggregate, DispatchError, Event, EventSet, EventStore, Kernel, RecordedEvent, StreamId,
};
use es_stores::PostgresStore;
use postgres_common::store;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

impl Event for Deposited {
    const NAME: &'static str = "Deposited";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq)]
enum AccountEvent {
    Deposited(Deposited),
}

impl EventSet for AccountEvent {
    const NAMES: &'static [&'static str] = &["Deposited"];
    fn event_type(&self) -> &'static str {
        Deposited::NAME
    }
    fn event_version(&self) -> u32 {
        Deposited::VERSION
    }
    fn encode(&self) -> Result<Vec<u8>, EventError> {
        match self {
            AccountEvent::Deposited(e) => e.encode_payload(),
        }
    }
    fn decode(event_type: &str, version: u32, payload: &[u8]) -> Result<Self, EventError> {
        match event_type {
            "Deposited" => Deposited::decode_payload(version, payload).map(Self::Deposited),
            other => Err(EventError::UnknownEvent {
                event_type: other.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Deposit(u64);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = Deposit;
    type Event = AccountEvent;
    type Error = std::convert::Infallible;

    fn handle(&self, command: Deposit) -> Result<Vec<AccountEvent>, Self::Error> {
        Ok(vec![AccountEvent::Deposited(Deposited {
            amount: command.0,
        })])
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited(e) => self.balance += e.amount,
        }
    }
}

fn kernel(store: PostgresStore) -> Kernel {
    Kernel::builder()
        .store(store)
        .conflict_retries(50)
        .register::<Account>()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_hammer_the_same_accounts() {
    let (node_a, guard) = store("multinode").await;
    let node_b = guard.another_node(8).await;
    const ACCOUNTS: u64 = 8;
    const CLIENTS_PER_NODE: u64 = 16;
    const COMMANDS_PER_CLIENT: u64 = 40;
    let total = (2 * CLIENTS_PER_NODE * COMMANDS_PER_CLIENT) as usize;

    // A reader of the global log on node B, following it while the nodes write, until it has
    // read as many events as were accepted.
    let (target_tx, target) = tokio::sync::watch::channel(None::<usize>);
    let reader = {
        let store = node_b.clone();
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut next = 1;
            let mut head = store.subscribe();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while target.borrow().is_none_or(|n| seen.len() < n) {
                assert!(tokio::time::Instant::now() < deadline, "reader timed out");
                let page = store.read_all(next, 50).await.unwrap();
                if page.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_millis(50), head.changed()).await;
                }
                for e in page {
                    next = e.position + 1;
                    seen.push(e);
                }
            }
            seen
        })
    };

    let kernels = [kernel(node_a.clone()), kernel(node_b.clone())];
    let mut clients = Vec::new();
    for (n, k) in kernels.iter().enumerate() {
        for c in 0..CLIENTS_PER_NODE {
            let k = k.clone();
            clients.push(tokio::spawn(async move {
                let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
                let mut rejected = 0u64;
                for i in 0..COMMANDS_PER_CLIENT {
                    let id = format!("acc-{}", (c * 7 + i * 3 + n as u64) % ACCOUNTS);
                    let amount = 1 + (c + i) % 5;
                    match k.dispatch::<Account>(&id, Deposit(amount)).await {
                        Ok(done) => {
                            assert_eq!(done.events.len(), 1);
                            *accepted.entry(id).or_default() += amount;
                        }
                        Err(DispatchError::Conflict { .. }) => rejected += 1,
                        Err(e) => panic!("node {n}: command failed: {e}"),
                    }
                }
                (accepted, rejected)
            }));
        }
    }
    let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
    let mut conflicts = 0;
    for c in clients {
        let (mine, rejected) = c.await.unwrap();
        conflicts += rejected;
        for (id, amount) in mine {
            *accepted.entry(id).or_default() += amount;
        }
    }
    eprintln!("two nodes: {total} commands answered, {conflicts} gave up after conflicts");
    for k in &kernels {
        k.shutdown().await;
    }

    let all = node_a.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(
        all.len() as u64 + conflicts,
        total as u64,
        "every accepted command is one event"
    );
    let mut per_stream: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
    let mut balances: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        per_stream
            .entry(e.stream.clone())
            .or_default()
            .push(e.sequence);
        let AccountEvent::Deposited(d) =
            AccountEvent::decode(&e.event_type, e.event_version, &e.payload).unwrap();
        *balances.entry(e.stream.aggregate_id.clone()).or_default() += d.amount;
    }
    for (stream, mut seqs) in per_stream {
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{stream}: duplicate or missing sequence"
        );
    }
    assert_eq!(
        balances, accepted,
        "balances equal the sum of accepted deposits"
    );
    // A fresh node rehydrates the same balances.
    let fresh = kernel(node_b.clone());
    for (id, balance) in &accepted {
        assert_eq!(fresh.state::<Account>(id).await.unwrap().balance, *balance);
    }
    fresh.shutdown().await;

    target_tx.send_replace(Some(all.len()));
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen, all,
        "the log reader skipped, repeated or reordered events"
    );
}
