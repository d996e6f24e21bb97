//! A bank account: deposits, withdrawals that may not overdraw, and a balance projection.
//!
//! The rules are the original demo's: an amount must be positive (a zero amount is refused with
//! [`BankError::ZeroAmount`]), and a withdrawal may not exceed the balance
//! ([`BankError::InsufficientFunds`]). This module is the project's one bank domain: the
//! example, the benchmark program and the cross-crate tests all use it.

use std::collections::BTreeMap;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

/// Put money in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit {
    /// The amount, in cents.
    pub amount: u64,
}

/// Take money out, if the balance allows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw {
    /// The amount, in cents.
    pub amount: u64,
}

/// Money was put in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited {
    /// The amount, in cents.
    pub amount: u64,
}

/// Money was taken out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 1)]
pub struct Withdrawn {
    /// The amount, in cents.
    pub amount: u64,
}

/// Why a bank command is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// A deposit or withdrawal of nothing: amounts must be positive.
    #[error("the amount must be positive, got 0")]
    ZeroAmount,
    /// The withdrawal exceeds the balance.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// The balance.
        balance: u64,
        /// The requested amount.
        requested: u64,
    },
}

/// A bank account's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    /// The balance, in cents.
    pub balance: u64,
}

#[aggregate(name = "bank_account", error = BankError)]
impl BankAccount {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        if cmd.amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: cmd.amount,
            });
        }
        Ok(Withdrawn { amount: cmd.amount })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }
}

/// Every account's balance (the original demo's `bank_account_balance_projection`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Balances {
    /// Balance per account id.
    pub by_account: BTreeMap<String, i64>,
}

#[projection(name = "bank_account_balances")]
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
