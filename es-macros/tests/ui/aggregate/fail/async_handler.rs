// Handlers are pure and synchronous.
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
    async fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply]
    async fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
