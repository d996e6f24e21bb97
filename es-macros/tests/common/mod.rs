//! The bank domain of the design, shared by the behaviour tests.
#![allow(dead_code)]

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit {
    pub amount: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw {
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 1)]
pub struct Withdrawn {
    pub amount: u64,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BankError {
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    pub balance: u64,
}

#[aggregate(name = "bank_account", error = BankError)]
impl BankAccount {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
        Ok(Deposited { amount: cmd.amount })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, BankError> {
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

/// Folds `events` into `state`, as the kernel does after a commit.
pub fn apply_all<A: Aggregate>(state: &mut A, events: &[A::Event]) {
    for event in events {
        state.apply(event);
    }
}
