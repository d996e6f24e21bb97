// A command handler returns `Result<Events, Error>`.
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
    fn deposit(&self, _: Deposit) -> Deposited { Deposited }
    #[command]
    fn withdraw(&self, _: Withdraw) {}
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
