use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.deposited", version = 2)]
#[event(name = "bank.deposit")]
pub struct Deposited { pub amount: u64 }

fn main() {}
