// `#[event]` arguments that are not `key = value`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name("bank.deposited"), version)]
pub struct Deposited;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event = "bank.withdrawn"]
pub struct Withdrawn;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(bank::name = "bank.closed", version = 1 + 1)]
pub struct Closed;

fn main() {}
