// A projection's state needs `Default` (the state before the first event).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

pub struct Totals { pub count: u64 }

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn deposited(&mut self, _: &Recorded<Deposited>) { self.count += 1; }
}

fn main() {}
