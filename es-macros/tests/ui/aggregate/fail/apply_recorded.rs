// `#[apply]` folds payloads; `Recorded<_>` is for projections.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Account { pub balance: u64 }

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, e: &Recorded<Deposited>) { self.balance += e.payload.amount; }
}

fn main() {}
