// One event type, one `#[apply]`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Account { balance: u64 }

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
    #[apply]
    fn also_deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
}

fn main() {}
