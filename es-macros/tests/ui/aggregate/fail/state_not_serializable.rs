// The aggregate's state is snapshotted: the type needs `Default`, `Serialize` and `Deserialize`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
