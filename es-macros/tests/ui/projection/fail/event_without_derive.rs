use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposited { pub amount: u64 }

#[derive(Default)]
pub struct Totals { total: u64 }

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) { self.total += e.payload.amount; }
}

fn main() {}
