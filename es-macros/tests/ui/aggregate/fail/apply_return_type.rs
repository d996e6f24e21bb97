// Applying a recorded event cannot fail: `#[apply]` returns nothing.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Withdrawn { pub amount: u64 }

#[derive(Default, Serialize, Deserialize)]
pub struct Account { balance: u64 }

#[aggregate]
impl Account {
    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) -> Result<(), String> {
        self.balance = self.balance.checked_sub(e.amount).ok_or("overdrawn")?;
        Ok(())
    }
}

fn main() {}
