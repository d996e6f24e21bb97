// A handler returns `Result<_, BankError>` but `#[aggregate]` has no `error = BankError`: one
// error, at `BankError`, that says to add it (only the first handler is reported).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("bank error")]
pub struct BankError;

#[derive(Clone)]
pub struct Deposit;
#[derive(Clone)]
pub struct Withdraw;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(name = "account")]
impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited, BankError> { Ok(Deposited) }
    #[command]
    fn withdraw(&self, _: Withdraw) -> Result<Deposited, BankError> { Err(BankError) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
