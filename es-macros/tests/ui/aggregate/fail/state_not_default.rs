// An aggregate's state needs `Default` (the state before its first event).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Account { pub balance: u64 }

#[aggregate]
impl Account {}

fn main() {}
