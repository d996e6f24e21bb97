// An aggregate's event enum and one of its events in the same projection: each stored event
// of that aggregate would match two handlers.
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
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

#[derive(Default)]
pub struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn any(&mut self, _: &Recorded<AccountEvent>) {}
    #[on]
    fn deposited(&mut self, _: &Recorded<Deposited>) {}
}

fn main() {}
