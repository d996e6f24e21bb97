// An `async fn` handler, as an axum user would write it.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default)]
pub struct Totals { pub count: u64 }

#[projection(name = "totals")]
impl Totals {
    #[on]
    async fn deposited(&mut self, _: &Recorded<Deposited>) { self.count += 1; }
}

fn main() {}
