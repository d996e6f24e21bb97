#![deny(warnings)]
// The design's projection, a handler returning `Result`, and a state without serde.
use std::collections::BTreeMap;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 1)]
pub struct Withdrawn { pub amount: u64 }

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Balances { pub by_account: BTreeMap<String, i64> }

#[projection(name = "balances")]
impl Balances {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        *self.by_account.entry(e.stream.aggregate_id.clone()).or_default() += e.payload.amount as i64;
    }
    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        *self.by_account.entry(e.stream.aggregate_id.clone()).or_default() -= e.payload.amount as i64;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("too large")]
pub struct TooLarge;

#[derive(Default)]
pub struct Largest { pub amount: u64 }

#[projection(name = "largest")]
impl Largest {
    #[on]
    fn deposited(&mut self, e: &es_core::event::Recorded<Deposited>) -> Result<(), TooLarge> {
        if e.payload.amount == u64::MAX {
            return Err(TooLarge);
        }
        self.amount = self.amount.max(e.payload.amount);
        Ok(())
    }
}

fn main() {
    assert!(Balances::accepts("bank.withdrawn"));
    assert!(Balances::default().encode_state().is_some());
    assert!(Largest::default().encode_state().is_none());
}

/// A projection without handlers accepts nothing (and compiles without warnings).
#[derive(Default)]
pub struct Nothing;

#[projection(name = "nothing")]
impl Nothing {}

const _: fn() = || {
    assert!(!Nothing::accepts("Deposited"));
};
