use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = bank_deposited, version = "2")]
pub struct Deposited { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "", version = 0)]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(version = -1)]
pub struct Closed;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event]
pub struct Opened;

fn main() {}
