// A method is a command handler or an event applier, not both.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
