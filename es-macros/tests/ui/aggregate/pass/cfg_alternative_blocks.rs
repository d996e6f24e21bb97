// Two `#[aggregate]` blocks of one type of which one is compiled out by `#[cfg]`: only one
// block exists for rustc, and the macro does not merge the other one in.
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
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited)
    }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

#[cfg(any())]
#[aggregate]
impl Account {
    #[command]
    fn missing(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited)
    }
}

fn main() {
    let _ = AccountCommand::Deposit(Deposit);
}
