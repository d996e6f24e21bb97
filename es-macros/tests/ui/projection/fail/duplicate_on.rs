use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default)]
pub struct Totals { total: u64, count: u64 }

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn sum(&mut self, e: &Recorded<Deposited>) { self.total += e.payload.amount; }
    #[on]
    fn count(&mut self, _: &Recorded<Deposited>) { self.count += 1; }
}

fn main() {}
