//! A bank account: deposits, withdrawals that may not overdraw, a balance projection, and
//! transfers between accounts run by a process manager ([`Transfer`]).
//!
//! The rules are the original demo's: an amount must be positive (a zero amount is refused with
//! [`BankError::ZeroAmount`]), and a withdrawal may not exceed the balance
//! ([`BankError::InsufficientFunds`]). This module is the project's one bank domain: the
//! example, the benchmark program and the cross-crate tests all use it.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// Close the account: later deposits and withdrawals are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Close;

/// The account was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.closed", version = 1)]
pub struct Closed;

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
    /// The account is closed.
    #[error("the account is closed")]
    Closed,
}

/// A bank account's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    /// The balance, in cents.
    pub balance: u64,
    /// Whether the account was closed.
    #[serde(default)]
    pub closed: bool,
}

#[aggregate(name = "bank_account", error = BankError)]
impl BankAccount {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, BankError> {
        if self.closed {
            return Err(BankError::Closed);
        }
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

    #[command]
    fn close(&self, _: Close) -> Result<Option<Closed>, BankError> {
        Ok((!self.closed).then_some(Closed))
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn closed(&mut self, _: &Closed) {
        self.closed = true;
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

/// Ask for money to move from one account to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestTransfer {
    /// The account to take the money from.
    pub from: String,
    /// The account to give it to.
    pub to: String,
    /// The amount, in cents.
    pub amount: u64,
}

/// A transfer was asked for; the [`Transfer`] process manager carries it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.transfer_requested", version = 1)]
pub struct TransferRequested {
    /// The account to take the money from.
    pub from: String,
    /// The account to give it to.
    pub to: String,
    /// The amount, in cents.
    pub amount: u64,
}

/// The transfer desk: records transfer requests (one stream per desk, or per customer).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct TransferDesk {
    /// How many transfers were requested here.
    pub requested: u64,
}

#[aggregate(name = "transfer_desk", error = BankError)]
impl TransferDesk {
    #[command]
    fn request(&self, cmd: RequestTransfer) -> Result<TransferRequested, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(TransferRequested {
            from: cmd.from,
            to: cmd.to,
            amount: cmd.amount,
        })
    }

    #[apply]
    fn requested(&mut self, _: &TransferRequested) {
        self.requested += 1;
    }
}

/// How long a [`Transfer`] waits for its deposit's answer before it gives the money back.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

/// A transfer's deposit got no answer within [`TRANSFER_TIMEOUT`]: a deadline of the
/// [`Transfer`] process manager (stored with its instance, so it survives restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.transfer_timed_out", version = 1)]
pub struct TransferTimedOut {
    /// The account the deposit went to.
    pub to: String,
}

/// One transfer in flight: withdraw from `from`, then deposit to `to`; when the deposit is
/// refused, or gets no answer within [`TRANSFER_TIMEOUT`] ([`TransferTimedOut`]), give the money
/// back to `from`.
///
/// Instances are keyed by the correlation id of the [`TransferRequested`] event (the request's
/// command id unless given): the withdrawal and deposit it sends carry that id, so their events
/// come back to the same instance.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// The account the money comes from.
    pub from: String,
    /// The account the money goes to.
    pub to: String,
    /// The amount, in cents.
    pub amount: u64,
    /// Whether the withdrawal committed.
    pub withdrawn: bool,
}

#[process_manager(name = "transfers")]
impl Transfer {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<TransferRequested>, out: &mut Commands) {
        *self = Transfer {
            from: e.payload.from.clone(),
            to: e.payload.to.clone(),
            amount: e.payload.amount,
            withdrawn: false,
        };
        out.dispatch::<BankAccount>(
            &self.from,
            Withdraw {
                amount: self.amount,
            },
        );
    }

    #[on]
    fn withdrawn(&mut self, _e: &Recorded<Withdrawn>, out: &mut Commands) {
        self.withdrawn = true;
        out.dispatch::<BankAccount>(
            &self.to,
            Deposit {
                amount: self.amount,
            },
        );
        out.schedule(
            TRANSFER_TIMEOUT,
            TransferTimedOut {
                to: self.to.clone(),
            },
        );
    }

    #[on]
    fn deposited(&mut self, _e: &Recorded<Deposited>, out: &mut Commands) {
        out.finish();
    }

    /// The deposit got no answer in time: give the money back (the instance ends, so a late
    /// answer finds none).
    #[on(deadline)]
    fn timed_out(&mut self, _d: &TransferTimedOut, out: &mut Commands) {
        out.dispatch::<BankAccount>(
            &self.from,
            Deposit {
                amount: self.amount,
            },
        );
        out.finish();
    }

    #[rejected]
    fn refused(&mut self, _r: &Rejection, out: &mut Commands) {
        if self.withdrawn {
            out.dispatch::<BankAccount>(
                &self.from,
                Deposit {
                    amount: self.amount,
                },
            );
        }
        out.finish();
    }
}
