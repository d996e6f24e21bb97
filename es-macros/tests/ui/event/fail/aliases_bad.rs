use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn lift(v: Value) -> Result<Value, UpcastError> {
    Ok(v)
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", aliases("bank.withdrawn", "old withdrawn", "w", "w", 3))]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(aliases = "x")]
pub struct Deposited { pub amount: u64 }

fn main() {}
