// A type with two `#[aggregate]` impl blocks: the message says to merge them.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
}

#[aggregate]
impl Account {
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
