// `#[on]` outside a `#[projection]` block (here an aggregate) says where it belongs.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default)]
pub struct Totals;

impl Totals {
    #[on]
    fn deposited(&mut self, _: &Recorded<Deposited>) {}
}

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
    #[on]
    fn seen(&mut self, _: &Recorded<Deposited>) {}
}

fn main() {}
