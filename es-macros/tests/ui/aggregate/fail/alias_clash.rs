use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.deposited")]
pub struct Deposited { pub amount: u64 }

/// Its alias is the other event's name.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", aliases("bank.deposited"))]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account { pub balance: u64 }

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) { self.balance -= e.amount; }
}

fn main() {}
