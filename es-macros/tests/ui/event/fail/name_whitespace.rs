// A stored name with spaces (around or inside) would never match the same name written without
// them: refused, with the name to write.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = " bank.deposited ")]
pub struct Deposited;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank withdrawn", version = 2)]
pub struct Withdrawn;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.closed\n")]
pub struct Closed;

fn main() {}
