//! `#[aggregate]`: the generated enums, `EventSet` and `Aggregate` impls, driven without a kernel.
//! The bank aggregate comes from `es-examples`; the others here exercise shapes it does not have.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::convert::Infallible;

use es_core::event::EventError;
use es_core::prelude::*;
use es_examples::bank::{
    BankAccount, BankAccountCommand, BankAccountEvent, BankError, Deposit, Deposited, Withdraw,
    Withdrawn,
};
use serde::{Deserialize, Serialize};

/// Folds `events` into `state`, as the kernel does after a commit.
fn apply_all<A: Aggregate>(state: &mut A, events: &[A::Event]) {
    for event in events {
        state.apply(event);
    }
}

#[test]
fn the_design_example_decides_and_folds() {
    let mut account = BankAccount::default();
    let events = account.handle(Deposit { amount: 100 }.into()).unwrap();
    assert!(matches!(
        events.as_slice(),
        [BankAccountEvent::Deposited(Deposited { amount: 100 })]
    ));
    apply_all(&mut account, &events);
    assert_eq!(account.balance, 100);

    let events = account.handle(Withdraw { amount: 30 }.into()).unwrap();
    apply_all(&mut account, &events);
    assert_eq!(account.balance, 70);

    let rejected = account.handle(BankAccountCommand::Withdraw(Withdraw { amount: 1_000 }));
    assert!(matches!(
        rejected.unwrap_err(),
        BankError::InsufficientFunds {
            balance: 70,
            requested: 1_000
        }
    ));
    assert_eq!(account.balance, 70, "a rejected command changes nothing");
}

#[test]
fn aggregate_type_name_and_associated_types() {
    assert_eq!(BankAccount::TYPE, "bank_account");
    fn error_is<A: Aggregate<Error = BankError>>() {}
    error_is::<BankAccount>();
}

#[test]
fn enums_convert_from_their_members() {
    assert!(matches!(
        BankAccountCommand::from(Deposit { amount: 1 }),
        BankAccountCommand::Deposit(Deposit { amount: 1 })
    ));
    assert!(matches!(
        BankAccountEvent::from(Withdrawn { amount: 2 }),
        BankAccountEvent::Withdrawn(Withdrawn { amount: 2 })
    ));
}

#[test]
fn event_set_names_and_round_trip() {
    assert_eq!(
        <BankAccountEvent as EventSet>::NAMES,
        &["Deposited", "bank.closed", "bank.withdrawn"]
    );
    assert!(BankAccountEvent::contains("bank.withdrawn"));
    assert!(!BankAccountEvent::contains("Withdrawn"));

    for event in [
        BankAccountEvent::Deposited(Deposited { amount: 3 }),
        BankAccountEvent::Withdrawn(Withdrawn { amount: 4 }),
    ] {
        let new = event.to_new_event().unwrap();
        assert_eq!(new.event_type, event.event_type());
        assert_eq!(new.event_version, 1);
        let back =
            BankAccountEvent::decode(&new.event_type, new.event_version, &new.payload).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
    }
    let withdrawn = BankAccountEvent::Withdrawn(Withdrawn { amount: 4 });
    assert_eq!(withdrawn.event_type(), "bank.withdrawn");
    assert_eq!(withdrawn.encode().unwrap(), br#"{"amount":4}"#);
}

#[test]
fn unknown_names_and_bad_payloads_are_typed_errors() {
    assert_eq!(
        BankAccountEvent::decode("Opened", 1, b"{}").unwrap_err(),
        EventError::UnknownEvent {
            event_type: "Opened".into()
        }
    );
    assert!(matches!(
        BankAccountEvent::decode("Deposited", 1, b"not json"),
        Err(EventError::Payload { event_type, .. }) if event_type == "Deposited"
    ));
    assert!(matches!(
        BankAccountEvent::decode("bank.withdrawn", 9, br#"{"amount":1}"#),
        Err(EventError::UnsupportedVersion {
            version: 9,
            supported: 1,
            ..
        })
    ));
}

// Every shape a command handler may return, and an aggregate with default arguments.

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AddItem {
    sku: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AddItems {
    skus: Vec<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RemoveItem {
    sku: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Touch;
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkout;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct ItemAdded {
    sku: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct ItemRemoved {
    sku: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "cart.checked_out", version = 2)]
struct CheckedOut {
    items: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShoppingCart {
    items: Vec<String>,
    open: bool,
}

#[aggregate]
impl ShoppingCart {
    /// Returns one event.
    #[command]
    fn add_item(&self, cmd: AddItem) -> Result<ItemAdded, Infallible> {
        Ok(ItemAdded { sku: cmd.sku })
    }

    /// Returns several.
    #[command]
    fn add_items(&self, cmd: AddItems) -> Result<Vec<ItemAdded>, Infallible> {
        Ok(cmd.skus.into_iter().map(|sku| ItemAdded { sku }).collect())
    }

    /// Returns an event or none.
    #[command]
    fn remove_item(&self, cmd: RemoveItem) -> Result<Option<ItemRemoved>, Infallible> {
        Ok(self
            .items
            .contains(&cmd.sku)
            .then_some(ItemRemoved { sku: cmd.sku }))
    }

    /// Returns nothing.
    #[command]
    fn touch(&self, _: Touch) -> Result<(), Infallible> {
        Ok(())
    }

    /// Returns a tuple of different events.
    #[command]
    fn checkout(&self, _: Checkout) -> std::result::Result<(ItemRemoved, CheckedOut), Infallible> {
        let last = self.items.last().cloned().unwrap_or_default();
        Ok((
            ItemRemoved { sku: last },
            CheckedOut {
                items: self.items.len() - 1,
            },
        ))
    }

    #[apply]
    fn item_added(&mut self, e: &ItemAdded) {
        self.items.push(e.sku.clone());
    }

    #[apply]
    fn item_removed(&mut self, e: &ItemRemoved) {
        self.items.retain(|sku| sku != &e.sku);
    }

    #[apply]
    fn checked_out(&mut self, _: &CheckedOut) {
        self.open = false;
    }

    /// An ordinary method next to the handlers.
    fn count(&self) -> usize {
        self.items.len()
    }
}

fn run(cart: &mut ShoppingCart, command: impl Into<ShoppingCartCommand>) -> Vec<ShoppingCartEvent> {
    let Ok(events) = cart.handle(command.into());
    apply_all(cart, &events);
    events
}

#[test]
fn handlers_stay_ordinary_methods() {
    let mut cart = ShoppingCart::default();
    assert_eq!(
        cart.add_item(AddItem { sku: "a".into() }),
        Ok(ItemAdded { sku: "a".into() })
    );
    cart.item_added(&ItemAdded { sku: "a".into() });
    assert_eq!(cart.count(), 1);
}

#[test]
fn defaults_name_the_type_in_snake_case_and_never_fail() {
    assert_eq!(ShoppingCart::TYPE, "shopping_cart");
    fn infallible<A: Aggregate<Error = Infallible>>() {}
    infallible::<ShoppingCart>();
}

#[test]
fn handlers_may_return_one_many_optional_no_or_a_tuple_of_events() {
    let mut cart = ShoppingCart::default();
    assert_eq!(run(&mut cart, AddItem { sku: "a".into() }).len(), 1);
    let events = run(
        &mut cart,
        AddItems {
            skus: vec!["b".into(), "c".into()],
        },
    );
    assert_eq!(events.len(), 2);
    assert_eq!(cart.count(), 3);
    assert_eq!(run(&mut cart, RemoveItem { sku: "z".into() }).len(), 0);
    assert_eq!(run(&mut cart, RemoveItem { sku: "a".into() }).len(), 1);
    assert!(run(&mut cart, Touch).is_empty());
    let events = run(&mut cart, Checkout);
    assert!(matches!(
        events.as_slice(),
        [
            ShoppingCartEvent::ItemRemoved(ItemRemoved { sku }),
            ShoppingCartEvent::CheckedOut(CheckedOut { items: 1 }),
        ] if sku == "c"
    ));
    assert_eq!(cart.items, vec!["b".to_owned()]);
    assert_eq!(events[1].event_type(), "cart.checked_out");
    assert_eq!(events[1].event_version(), 2);
}

// A handler error converts into the aggregate's error with `From`, like `?` does.

#[derive(Debug, thiserror::Error)]
#[error("limit exceeded")]
struct LimitExceeded;

#[derive(Debug, thiserror::Error)]
enum WalletError {
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    balance: u64,
}

#[aggregate(error = WalletError)]
impl Wallet {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, LimitExceeded> {
        if cmd.amount > 10 {
            return Err(LimitExceeded);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

#[test]
fn handler_errors_convert_into_the_aggregate_error() {
    let wallet = Wallet::default();
    assert!(matches!(
        wallet.handle(Deposit { amount: 11 }.into()),
        Err(WalletError::Limit(LimitExceeded))
    ));
    assert_eq!(
        wallet.handle(Deposit { amount: 1 }.into()).unwrap().len(),
        1
    );
}

// No handlers at all still make a valid (if useless) aggregate.

#[derive(Debug, Default, Serialize, Deserialize)]
struct Empty;

#[aggregate]
impl Empty {}

#[test]
fn an_aggregate_without_handlers_compiles() {
    assert_eq!(Empty::TYPE, "empty");
    assert!(<EmptyEvent as EventSet>::NAMES.is_empty());
    assert!(matches!(
        EmptyEvent::decode("x", 1, b""),
        Err(EventError::UnknownEvent { .. })
    ));
}
