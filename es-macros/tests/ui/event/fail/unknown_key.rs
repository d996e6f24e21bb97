use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(nmae = "bank.deposited", schema = 2)]
pub struct Deposited { pub amount: u64 }

fn main() {
    // The stub impl keeps this line free of errors.
    let _ = Deposited::NAME;
}
