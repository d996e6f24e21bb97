use es_core::prelude::*;
use serde::{Deserialize, Serialize};

// The kernel re-runs a command after a version conflict, so commands must be `Clone`.
pub struct Deposit { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Account { balance: u64 }

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
}

fn main() {}
