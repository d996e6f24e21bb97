//! The original demo's domain cases, given/when/then without a runtime or a store.
#![allow(missing_docs)]

use es_core::testkit::AggregateTest;
use es_examples::bank::{BankAccount, BankError, Deposit, Deposited, Withdraw, Withdrawn};

#[test]
fn a_valid_deposit_is_recorded_and_raises_the_balance() {
    AggregateTest::<BankAccount>::given_no_events()
        .when(Deposit { amount: 100 })
        .then_expect_events([Deposited { amount: 100 }.into()])
        .then_state(|account| assert_eq!(account.balance, 100));
}

#[test]
fn a_zero_deposit_is_refused_with_its_own_error() {
    AggregateTest::<BankAccount>::given([Deposited { amount: 5 }.into()])
        .when(Deposit { amount: 0 })
        .then_expect_error_matches(|e| *e == BankError::ZeroAmount)
        .then_state(|account| assert_eq!(account.balance, 5));
}

#[test]
fn a_valid_withdrawal_is_recorded_and_lowers_the_balance() {
    AggregateTest::<BankAccount>::given([Deposited { amount: 100 }.into()])
        .when(Withdraw { amount: 40 })
        .then_expect_events([Withdrawn { amount: 40 }.into()])
        .then_state(|account| assert_eq!(account.balance, 60));
}

#[test]
fn a_withdrawal_of_the_whole_balance_is_allowed() {
    AggregateTest::<BankAccount>::given([Deposited { amount: 100 }.into()])
        .when(Withdraw { amount: 100 })
        .then_expect_events([Withdrawn { amount: 100 }.into()])
        .then_state(|account| assert_eq!(account.balance, 0));
}

#[test]
fn a_withdrawal_beyond_the_balance_is_refused_as_insufficient_funds() {
    AggregateTest::<BankAccount>::given([
        Deposited { amount: 100 }.into(),
        Withdrawn { amount: 30 }.into(),
    ])
    .when(Withdraw { amount: 71 })
    .then_expect_error_matches(|e| {
        *e == BankError::InsufficientFunds {
            balance: 70,
            requested: 71,
        }
    })
    .then_expect_error_message("insufficient funds: balance 70, requested 71")
    .then_state(|account| assert_eq!(account.balance, 70));
}

#[test]
fn a_zero_withdrawal_is_refused_with_its_own_error_even_on_an_empty_account() {
    AggregateTest::<BankAccount>::given_no_events()
        .when(Withdraw { amount: 0 })
        .then_expect_error_matches(|e| *e == BankError::ZeroAmount)
        .then_expect_error_message("the amount must be positive, got 0");
}
