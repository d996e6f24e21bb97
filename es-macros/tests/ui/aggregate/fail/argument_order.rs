// The command first and `&self` second, as a free function would take it.
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
    fn deposit(cmd: Deposit, &self) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
