#![deny(warnings)]
// Defaults, `name`, `version`, both split over two attributes, and enums.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 2)]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "bank.closed")]
#[event(version = 3)]
pub enum Closed { ByCustomer, ByBank { reason: String } }

const _: () = assert!(Deposited::VERSION == 1);
const _: () = assert!(Withdrawn::VERSION == 2);
const _: () = assert!(Closed::VERSION == 3);

fn main() {
    assert_eq!(Deposited::NAME, "Deposited");
    assert_eq!(Withdrawn::NAME, "bank.withdrawn");
    assert_eq!(Closed::NAME, "bank.closed");
}
