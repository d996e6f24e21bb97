//! `#[projection]`: filtering by event name, decoding, handler outcomes and state persistence.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use es_core::prelude::*;
use es_core::projection::{ProjectionError, run_once};
use es_examples::bank::{Deposited, Withdrawn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Balances {
    by_account: BTreeMap<String, i64>,
}

#[projection(name = "balances")]
impl Balances {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        *self
            .by_account
            .entry(e.stream.aggregate_id.clone())
            .or_default() += e.payload.amount as i64;
    }

    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        *self
            .by_account
            .entry(e.stream.aggregate_id.clone())
            .or_default() -= e.payload.amount as i64;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("deposit too large: {0}")]
struct TooLarge(u64);

/// Not serializable: its state is never persisted.
#[derive(Debug, Default)]
struct Audit {
    seen: Vec<(u64, u64)>,
    handle: Option<std::sync::Arc<()>>,
}

#[projection(name = "audit")]
impl Audit {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) -> Result<(), TooLarge> {
        if e.payload.amount > 1_000 {
            return Err(TooLarge(e.payload.amount));
        }
        self.seen.push((e.position, e.payload.amount));
        Ok(())
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

async fn append(store: &MemoryStore, id: &str, events: Vec<NewEvent>) -> Vec<RecordedEvent> {
    store
        .append(
            &StreamId::new("bank_account", id),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap()
        .events
}

#[test]
fn name_and_accepted_event_types() {
    assert_eq!(Balances::NAME, "balances");
    assert!(Balances::accepts("Deposited"));
    assert!(Balances::accepts("bank.withdrawn"));
    assert!(!Balances::accepts("Withdrawn"), "the recorded name counts");
    assert!(!Balances::accepts("Opened"));
    assert_eq!(Audit::NAME, "audit");
    assert!(!Audit::accepts("bank.withdrawn"));
}

#[tokio::test]
async fn folds_accepted_events_and_skips_others_without_decoding_them() {
    let store = MemoryStore::new();
    append(
        &store,
        "acc-1",
        vec![
            NewEvent::new("Opened", b"\x00 not json at all".to_vec()),
            NewEvent::new("Deposited", json(&Deposited { amount: 100 })),
            NewEvent::new("bank.withdrawn", json(&Withdrawn { amount: 30 })),
        ],
    )
    .await;
    append(
        &store,
        "acc-2",
        vec![NewEvent::new("Deposited", json(&Deposited { amount: 5 }))],
    )
    .await;

    let balances: Balances = run_once(&store).await.unwrap();
    assert_eq!(
        balances.by_account,
        BTreeMap::from([("acc-1".to_owned(), 70), ("acc-2".to_owned(), 5)])
    );
}

#[tokio::test]
async fn an_accepted_event_that_does_not_decode_is_an_error() {
    let store = MemoryStore::new();
    let recorded = append(
        &store,
        "acc-1",
        vec![NewEvent::new("Deposited", b"not json".to_vec())],
    )
    .await;
    let mut balances = Balances::default();
    assert!(matches!(
        balances.handle(&recorded[0]),
        Err(ProjectionError::Decode(_))
    ));
    assert!(balances.by_account.is_empty());
    assert!(matches!(
        run_once::<Balances>(&store).await,
        Err(ProjectionError::At { position: 1, .. })
    ));
}

#[tokio::test]
async fn handler_errors_become_projection_errors() {
    let store = MemoryStore::new();
    let recorded = append(
        &store,
        "acc-1",
        vec![
            NewEvent::new("Deposited", json(&Deposited { amount: 1 })),
            NewEvent::new("Deposited", json(&Deposited { amount: 5_000 })),
        ],
    )
    .await;
    let mut audit = Audit::default();
    audit.handle(&recorded[0]).unwrap();
    assert_eq!(audit.seen, vec![(1, 1)]);
    let error = audit.handle(&recorded[1]).unwrap_err();
    assert!(matches!(error, ProjectionError::Handler(_)));
    assert_eq!(error.to_string(), "handler failed: deposit too large: 5000");
    assert!(audit.handle.is_none());
}

#[test]
fn serializable_state_is_persisted() {
    let balances = Balances {
        by_account: BTreeMap::from([("acc-1".to_owned(), 42)]),
    };
    let bytes = balances.encode_state().unwrap().unwrap();
    assert_eq!(bytes, br#"{"by_account":{"acc-1":42}}"#);
    assert_eq!(Balances::decode_state(&bytes).unwrap().unwrap(), balances);
    assert!(matches!(
        Balances::decode_state(b"{"),
        Some(Err(ProjectionError::State(_)))
    ));
}

#[test]
fn other_state_is_not_persisted() {
    assert!(Audit::default().encode_state().is_none());
    assert!(Audit::decode_state(b"{}").is_none());
}
