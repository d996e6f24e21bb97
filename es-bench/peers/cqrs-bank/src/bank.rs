//! The bank account of es-rs's benchmark domain, written as a cqrs-es aggregate: deposits, and
//! withdrawals that may not overdraw; amounts must be positive.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A bank account's state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BankAccount {
    /// The balance, in cents.
    pub balance: u64,
}

/// The commands of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum BankCommand {
    /// Put money in.
    Deposit {
        /// The amount, in cents.
        amount: u64,
    },
    /// Take money out, if the balance allows it.
    // The workload only deposits; withdrawals are part of the domain all the same.
    #[allow(dead_code)]
    Withdraw {
        /// The amount, in cents.
        amount: u64,
    },
}

/// The events of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankEvent {
    /// Money was put in.
    Deposited {
        /// The amount, in cents.
        amount: u64,
    },
    /// Money was taken out.
    Withdrawn {
        /// The amount, in cents.
        amount: u64,
    },
}

impl DomainEvent for BankEvent {
    fn event_type(&self) -> String {
        match self {
            BankEvent::Deposited { .. } => "Deposited",
            BankEvent::Withdrawn { .. } => "Withdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a command is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BankError {
    /// A deposit or withdrawal of nothing.
    ZeroAmount,
    /// The withdrawal exceeds the balance.
    InsufficientFunds {
        /// The balance.
        balance: u64,
        /// The requested amount.
        requested: u64,
    },
}

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankError::ZeroAmount => f.write_str("the amount must be positive, got 0"),
            BankError::InsufficientFunds { balance, requested } => write!(
                f,
                "insufficient funds: balance {balance}, requested {requested}"
            ),
        }
    }
}

impl std::error::Error for BankError {}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "bank_account";
    type Command = BankCommand;
    type Event = BankEvent;
    type Error = BankError;
    type Services = ();

    async fn handle(
        &mut self,
        command: BankCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), BankError> {
        match command {
            BankCommand::Deposit { amount: 0 } | BankCommand::Withdraw { amount: 0 } => {
                return Err(BankError::ZeroAmount);
            }
            BankCommand::Deposit { amount } => {
                sink.write(BankEvent::Deposited { amount }, self).await;
            }
            BankCommand::Withdraw { amount } => {
                if amount > self.balance {
                    return Err(BankError::InsufficientFunds {
                        balance: self.balance,
                        requested: amount,
                    });
                }
                sink.write(BankEvent::Withdrawn { amount }, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: BankEvent) {
        match event {
            BankEvent::Deposited { amount } => self.balance += amount,
            BankEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    #[test]
    fn deposits_and_withdrawals_follow_the_rules() {
        TestFramework::<BankAccount>::with(())
            .given_no_previous_events()
            .when(BankCommand::Deposit { amount: 1 })
            .then_expect_events(vec![BankEvent::Deposited { amount: 1 }]);
        TestFramework::<BankAccount>::with(())
            .given(vec![BankEvent::Deposited { amount: 5 }])
            .when(BankCommand::Withdraw { amount: 6 })
            .then_expect_error(BankError::InsufficientFunds {
                balance: 5,
                requested: 6,
            });
        TestFramework::<BankAccount>::with(())
            .given_no_previous_events()
            .when(BankCommand::Deposit { amount: 0 })
            .then_expect_error(BankError::ZeroAmount);
    }
}
