// Unknown arguments in `#[aggregate(...)]`, `#[command(...)]` and `#[apply(...)]`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(nmae = "account", snapshot_every = 10)]
impl Account {
    #[command(retries = 3)]
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply(event = Deposited)]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
