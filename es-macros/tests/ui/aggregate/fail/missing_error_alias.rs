// The same mistake behind a `Result<T>` alias, which the macro cannot see through: rustc's
// error is steered to name the fix.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("bank error")]
pub struct BankError;

pub type Result<T> = std::result::Result<T, BankError>;

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited> { Ok(Deposited) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
