//! Public helpers that nothing else in the workspace calls: each is used here as documented.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use es_core::prelude::*;
use es_core::projection::ProjectionError;
use es_core::store::quote_prefix;
use es_core::testkit::AggregateTest;
use es_core::{Kernel, StoreError};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn map_rejected_maps_the_rejection_and_keeps_every_other_variant() {
    let rejected: DispatchError<u8> = DispatchError::Rejected(7);
    assert!(matches!(
        rejected.map_rejected(|n| n.to_string()),
        DispatchError::Rejected(s) if s == "7"
    ));
    let others: Vec<DispatchError<u8>> = vec![
        DispatchError::Conflict {
            expected: 1,
            actual: 2,
        },
        DispatchError::NotRegistered,
        DispatchError::Store(StoreError::Closed),
        DispatchError::Panicked("boom".into()),
        DispatchError::Shutdown,
    ];
    for error in others {
        let before = error.to_string();
        let after = error.map_rejected(|_| -> String { unreachable!("not a rejection") });
        assert_eq!(after.to_string(), before);
    }
}

#[test]
fn aggregate_test_from_no_events() {
    let test = AggregateTest::<Account>::given_no_events();
    assert_eq!(test.state(), &Account::default());
    test.when(AccountCommand::Touch)
        .then_expect_no_events()
        .then_state(|a| assert_eq!(a.balance, 0));
    let then = AggregateTest::<Account>::given_no_events().when(AccountCommand::Withdraw(5));
    assert_eq!(
        then.result().as_ref().err(),
        Some(&AccountError::InsufficientFunds {
            balance: 0,
            requested: 5
        })
    );
    then.then_expect_error_message("insufficient funds: balance 0, requested 5");
}

#[test]
fn memory_store_len_counts_events() -> Result {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let store = MemoryStore::new();
    assert!(store.is_empty());
    runtime.block_on(store.append(
        &stream("len"),
        ExpectedVersion::NoStream,
        vec![NewEvent::new("Touched", b"{}".to_vec()); 3],
    ))?;
    assert_eq!(store.len(), 3);
    assert!(!store.is_empty());
    Ok(())
}

#[test]
fn quote_prefix_quotes_at_most_80_bytes_at_a_character_boundary() {
    assert_eq!(quote_prefix("short"), "\"short\"");
    let ascii = quote_prefix(&"a".repeat(100));
    assert_eq!(ascii, format!("\"{}\"... (20 more bytes)", "a".repeat(80)));
    // 'é' is 2 bytes: byte 80 falls between two of them, byte 81 would not.
    let accented = quote_prefix(&format!("x{}", "é".repeat(60)));
    assert_eq!(
        accented,
        format!("\"x{}\"... (42 more bytes)", "é".repeat(39))
    );
}

/// Deposits per account, for `with_state`.
#[derive(Debug, Default)]
struct Count {
    deposits: u64,
}

impl Projection for Count {
    const NAME: &'static str = "count";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn handle(&mut self, _: &RecordedEvent) -> std::result::Result<(), ProjectionError> {
        self.deposits += 1;
        Ok(())
    }
}

#[tokio::test]
async fn with_state_reads_a_projection_without_copying_it() -> Result {
    let k = Kernel::builder()
        .store(MemoryStore::new())
        .register::<Account>()
        .build()?;
    let h = k
        .projections()
        .start::<Count>(ProjectionOptions::default())
        .await?;
    let done = k
        .dispatch::<Account>("a", AccountCommand::Split(1, 2))
        .await?;
    let last = done.events.last().map_or(0, |e| e.position);
    tokio::time::timeout(Duration::from_secs(10), h.wait_for(last)).await??;
    assert_eq!(h.with_state(|c| c.deposits).await, 2);
    k.shutdown().await;
    Ok(())
}
