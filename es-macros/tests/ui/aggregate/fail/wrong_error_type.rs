// A handler's error must convert into the aggregate's `error = ...` type.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("bank error")]
pub struct BankError;

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(error = BankError)]
impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited, String> { Ok(Deposited) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
