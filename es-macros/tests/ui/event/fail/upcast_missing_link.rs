use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn lift(v: Value) -> Result<Value, UpcastError> {
    Ok(v)
}

/// Version 2 is not reached from version 1: `upcast(from = 1, ...)` is missing.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 3, upcast(from = 2, with = lift))]
pub struct Withdrawn { pub amount: u64 }

/// Versions 1 and 2 both need a link.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(version = 4, upcast(from = 3, with = lift))]
pub struct Deposited { pub amount: u64 }

fn main() {}
