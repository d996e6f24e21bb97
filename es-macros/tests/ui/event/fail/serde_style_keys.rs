// Keys a serde user would write: each gets one error that names the key meant.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(rename = "bank.deposited")]
pub struct Deposited;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", verison = 2)]
pub struct Withdrawn;

fn main() {}
