use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn lift(v: Value) -> Result<Value, UpcastError> {
    Ok(v)
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(version = 2, upcast(from = 1, with = lift), upcast(from = 2, with = lift))]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(upcast(from = 1, with = lift))]
pub struct Deposited { pub amount: u64 }

fn main() {}
