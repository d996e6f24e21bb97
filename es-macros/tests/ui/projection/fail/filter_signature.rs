use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

// A filter must be a `fn(&RecordedEvent) -> bool`; this one takes the event type.
fn only_vip(event_type: &str) -> bool {
    event_type == "Deposited"
}

#[derive(Default)]
pub struct Totals { total: u64 }

#[projection(name = "totals", filter = only_vip)]
impl Totals {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) { self.total += e.payload.amount; }
}

fn main() {}
