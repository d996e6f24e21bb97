// `Event` needs the payload to be `Serialize`, `Deserialize`, `Clone` and `Debug`.
use es_core::prelude::*;

#[derive(Debug, Clone, Event)]
pub struct Deposited { pub amount: u64 }

fn main() {}
