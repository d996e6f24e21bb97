// `Vec<Deposit>` and `Vec<Withdraw>` would both be the variant `AccountCommand::Vec`; `Vec`
// cannot be renamed, so the message says to wrap each in a named command struct, once.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit;
#[derive(Clone)]
pub struct Withdraw;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, _: Vec<Deposit>) -> Result<Vec<Deposited>, std::convert::Infallible> { Ok(vec![]) }
    #[command]
    fn withdraw(&self, _: Vec<Withdraw>) -> Result<Vec<Deposited>, std::convert::Infallible> { Ok(vec![]) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
