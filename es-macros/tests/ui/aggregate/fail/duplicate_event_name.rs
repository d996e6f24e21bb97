// Two event types recorded under one name could not be told apart when decoding.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.changed")]
pub struct Deposited;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "account.changed")]
pub struct Withdrawn;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
    #[apply]
    fn withdrawn(&mut self, _: &Withdrawn) {}
}

fn main() {}
