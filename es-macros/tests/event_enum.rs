//! The two shapes of round two, run through a kernel and a projection:
//! - a command handler returns the aggregate's own event enum (one, `Vec` or `Option` of it),
//!   for a variable number of mixed events;
//! - an `#[on]` handler takes `&Recorded<{Type}Event>` and gets every event of that aggregate,
//!   and only of that aggregate: its filter is the enum's names and the aggregate's type.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use es_core::prelude::*;
use es_core::projection::{OnEvents, run_once};
use es_examples::bank::{BankAccount, Deposit, Deposited, Withdraw, Withdrawn};
use serde::{Deserialize, Serialize};

/// Settles a day: any number of deposits, then an optional fee.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settle {
    deposits: Vec<u64>,
    fee: Option<u64>,
}

/// Opens the ledger; opening an open ledger records nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open;

/// Closes the ledger: exactly one event, or a rejection.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Close;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct FeeCharged {
    amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct Opened;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger.closed")]
struct Closed {
    balance: i64,
}

#[derive(Debug, thiserror::Error)]
enum LedgerError {
    #[error("the ledger is not open")]
    NotOpen,
}

/// Shares the bank's `Deposited` event type: a projection over `LedgerEvent` must still not see
/// the bank's deposits.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Ledger {
    open: bool,
    balance: i64,
}

#[aggregate(name = "ledger", error = LedgerError)]
impl Ledger {
    #[command]
    fn settle(&self, cmd: Settle) -> Result<Vec<LedgerEvent>, LedgerError> {
        if !self.open {
            return Err(LedgerError::NotOpen);
        }
        let mut events: Vec<LedgerEvent> = cmd
            .deposits
            .into_iter()
            .map(|amount| Deposited { amount }.into())
            .collect();
        events.extend(
            cmd.fee
                .map(|amount| LedgerEvent::from(FeeCharged { amount })),
        );
        Ok(events)
    }

    #[command]
    fn open(&self, _: Open) -> Result<Option<LedgerEvent>, LedgerError> {
        Ok((!self.open).then(|| Opened.into()))
    }

    #[command]
    fn close(&self, _: Close) -> Result<LedgerEvent, LedgerError> {
        if !self.open {
            return Err(LedgerError::NotOpen);
        }
        Ok(Closed {
            balance: self.balance,
        }
        .into())
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount as i64;
    }

    #[apply]
    fn fee_charged(&mut self, e: &FeeCharged) {
        self.balance -= e.amount as i64;
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    #[apply]
    fn closed(&mut self, _: &Closed) {
        self.open = false;
    }
}

/// Every ledger event through one handler, and the bank's withdrawals through another.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Activity {
    /// `(ledger id, event name, position)` of every ledger event, in order.
    ledger: Vec<(String, String, u64)>,
    /// The ledgers' balance as the projection sees it.
    ledger_balance: i64,
    /// The bank's withdrawals.
    withdrawn: u64,
}

#[projection(name = "activity")]
impl Activity {
    #[on]
    fn ledger(&mut self, e: &Recorded<LedgerEvent>) {
        self.ledger.push((
            e.stream.aggregate_id.clone(),
            e.payload.event_type().to_owned(),
            e.position,
        ));
        match &e.payload {
            LedgerEvent::Deposited(d) => self.ledger_balance += d.amount as i64,
            LedgerEvent::FeeCharged(f) => self.ledger_balance -= f.amount as i64,
            LedgerEvent::Opened(_) | LedgerEvent::Closed(_) => {}
        }
    }

    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        self.withdrawn += e.payload.amount;
    }
}

fn kernel() -> Kernel {
    Kernel::builder()
        .store(MemoryStore::new())
        .register::<BankAccount>()
        .register::<Ledger>()
        .build()
        .unwrap()
}

fn names(done: &Committed) -> Vec<&str> {
    done.events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn handlers_returning_the_event_enum_commit_every_event_they_decide() {
    let kernel = kernel();

    // `Option<LedgerEvent>`: one event, then none.
    let opened = kernel.dispatch::<Ledger>("l-1", Open).await.unwrap();
    assert_eq!((opened.version, names(&opened)), (1, vec!["Opened"]));
    let again = kernel.dispatch::<Ledger>("l-1", Open).await.unwrap();
    assert_eq!(again.version, 1, "`None` writes nothing");
    assert!(again.events.is_empty());

    // `Vec<LedgerEvent>`: a variable number of mixed events, in order.
    let settled = kernel
        .dispatch::<Ledger>(
            "l-1",
            Settle {
                deposits: vec![5, 7, 11],
                fee: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(settled.version, 5);
    assert_eq!(
        names(&settled),
        ["Deposited", "Deposited", "Deposited", "FeeCharged"]
    );
    let empty = kernel
        .dispatch::<Ledger>(
            "l-1",
            Settle {
                deposits: vec![],
                fee: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((empty.version, empty.events.len()), (5, 0));

    // `LedgerEvent`: exactly one.
    let closed = kernel.dispatch::<Ledger>("l-1", Close).await.unwrap();
    assert_eq!((closed.version, names(&closed)), (6, vec!["ledger.closed"]));
    let state = kernel.state::<Ledger>("l-1").await.unwrap();
    assert_eq!((state.open, state.balance), (false, 21));

    // The handlers' own error still converts, and writes nothing.
    match kernel.dispatch::<Ledger>("l-1", Close).await {
        Err(DispatchError::Rejected(LedgerError::NotOpen)) => {}
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        kernel.state::<Ledger>("l-2").await.unwrap().balance,
        0,
        "another ledger is untouched"
    );
    kernel.shutdown().await;
}

#[test]
fn the_event_enum_knows_its_aggregate_and_a_single_event_does_not() {
    assert_eq!(<LedgerEvent as OnEvents>::AGGREGATE_TYPE, Some("ledger"));
    assert_eq!(<Deposited as OnEvents>::AGGREGATE_TYPE, None);
    assert!(Activity::accepts("Deposited"));
    assert!(Activity::accepts("FeeCharged"));
    assert!(Activity::accepts("Opened"));
    assert!(Activity::accepts("ledger.closed"));
    assert!(Activity::accepts("bank.withdrawn"));
    assert!(!Activity::accepts("Closed"), "the stored name counts");
    assert!(!Activity::accepts("Withdrawn"));
}

/// Drives both aggregates; the bank's `Deposited` events share the ledger's event name and
/// type, and must not reach the ledger handler.
async fn drive(kernel: &Kernel) -> u64 {
    kernel.dispatch::<Ledger>("l-1", Open).await.unwrap();
    kernel
        .dispatch::<BankAccount>("acc-1", Deposit { amount: 1_000 })
        .await
        .unwrap();
    kernel
        .dispatch::<Ledger>(
            "l-1",
            Settle {
                deposits: vec![5, 7],
                fee: Some(2),
            },
        )
        .await
        .unwrap();
    kernel
        .dispatch::<BankAccount>("acc-1", Withdraw { amount: 300 })
        .await
        .unwrap();
    kernel.dispatch::<Ledger>("l-2", Open).await.unwrap();
    let done = kernel.dispatch::<Ledger>("l-1", Close).await.unwrap();
    done.events.last().unwrap().position
}

fn expected() -> Activity {
    let ledger = [
        ("l-1", "Opened", 1),
        ("l-1", "Deposited", 3),
        ("l-1", "Deposited", 4),
        ("l-1", "FeeCharged", 5),
        ("l-2", "Opened", 7),
        ("l-1", "ledger.closed", 8),
    ];
    Activity {
        ledger: ledger
            .iter()
            .map(|(id, name, position)| (id.to_string(), name.to_string(), *position))
            .collect(),
        ledger_balance: 10,
        withdrawn: 300,
    }
}

#[tokio::test]
async fn an_on_handler_over_the_event_enum_gets_every_event_of_that_aggregate_only() {
    let store = MemoryStore::new();
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .register::<Ledger>()
        .build()
        .unwrap();
    let head = drive(&kernel).await;
    assert_eq!(head, 8);

    // Catch-up.
    let caught_up: Activity = run_once(&store).await.unwrap();
    assert_eq!(caught_up, expected());

    // A live runner, started before more events: the same fold.
    let handle = kernel
        .projections()
        .start::<Activity>(ProjectionOptions::default())
        .await
        .unwrap();
    handle.wait_for(head).await.unwrap();
    assert_eq!(handle.state().await, expected());
    let more = kernel
        .dispatch::<Ledger>(
            "l-2",
            Settle {
                deposits: vec![40],
                fee: None,
            },
        )
        .await
        .unwrap();
    kernel
        .dispatch::<BankAccount>("acc-2", Deposit { amount: 1 })
        .await
        .unwrap();
    let last = kernel
        .dispatch::<BankAccount>("acc-2", Withdraw { amount: 1 })
        .await
        .unwrap();
    handle
        .wait_for(last.events.last().unwrap().position)
        .await
        .unwrap();
    let live = handle.state().await;
    assert_eq!(live.ledger.len(), 7);
    assert_eq!(
        live.ledger.last().unwrap(),
        &(
            "l-2".to_owned(),
            "Deposited".to_owned(),
            more.events[0].position
        )
    );
    assert_eq!((live.ledger_balance, live.withdrawn), (50, 301));
    kernel.shutdown().await;
}

#[tokio::test]
async fn another_aggregates_event_of_a_ledger_name_is_skipped_before_decoding() {
    let store = MemoryStore::new();
    // A bank stream holding an event named like a ledger event, with a payload that does not
    // decode as one: the aggregate-type filter skips it without decoding.
    store
        .append(
            &StreamId::new("bank_account", "acc-9"),
            ExpectedVersion::Any,
            vec![NewEvent::new("FeeCharged", b"not json".to_vec())],
        )
        .await
        .unwrap();
    let activity: Activity = run_once(&store).await.unwrap();
    assert_eq!(activity, Activity::default());

    // The same bytes in a ledger stream are the ledger's, and fail to decode.
    store
        .append(
            &StreamId::new("ledger", "l-9"),
            ExpectedVersion::Any,
            vec![NewEvent::new("FeeCharged", b"not json".to_vec())],
        )
        .await
        .unwrap();
    let error = run_once::<Activity>(&store).await.unwrap_err();
    assert!(
        error.to_string().contains("position 2"),
        "the error names the position: {error}"
    );
}
