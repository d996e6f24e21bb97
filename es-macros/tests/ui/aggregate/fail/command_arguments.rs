// A command handler takes exactly one argument, the command, by value.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit;
#[derive(Clone)]
pub struct Withdraw;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Done;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn none(&self) -> Result<Done, std::convert::Infallible> { Ok(Done) }
    #[command]
    fn two(&self, _: Deposit, now: u64) -> Result<Done, std::convert::Infallible> { let _ = now; Ok(Done) }
    #[command]
    fn by_ref(&self, _: &Withdraw) -> Result<Done, std::convert::Infallible> { Ok(Done) }
    #[apply]
    fn done(&mut self, _: &Done) {}
}

fn main() {}
