use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default)]
pub struct Totals { total: u64 }

#[projection(name = "totals", batch = 100)]
impl Totals {
    #[on(event = "Deposited")]
    fn deposited(&mut self, e: &Recorded<Deposited>) { self.total += e.payload.amount; }
}

fn main() {}
