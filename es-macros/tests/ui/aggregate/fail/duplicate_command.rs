// One command type, one handler.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Deposit { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[command]
    fn deposit_again(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
