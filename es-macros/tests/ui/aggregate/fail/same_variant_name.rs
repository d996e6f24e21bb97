// Two command types with the same name would be the same variant of `AccountCommand`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

mod v1 { #[derive(Clone)] pub struct Deposit; }
mod v2 { #[derive(Clone)] pub struct Deposit; }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, _: v1::Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[command]
    fn deposit_v2(&self, _: v2::Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
