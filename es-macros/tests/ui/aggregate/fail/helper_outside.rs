// `#[command]` and `#[apply]` outside an `#[aggregate]` block (a second, plain impl block of the
// aggregate, or a projection) say where they belong.
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
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply]
    fn deposited_again(&mut self, _: &Deposited) {}
}

#[derive(Default)]
pub struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[apply]
    fn deposited(&mut self, _: &Recorded<Deposited>) {}
}

fn main() {}
