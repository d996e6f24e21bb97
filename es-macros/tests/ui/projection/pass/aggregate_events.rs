// An `#[on]` handler that takes an aggregate's generated event enum gets every event of that
// aggregate: its filter is the enum's names and the aggregate's type. Two enums of different
// aggregates may share an event type (the stream's aggregate type tells them apart).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit { pub amount: u64 }
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Closed;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(name = "account")]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
    #[apply]
    fn closed(&mut self, _: &Closed) {}
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Wallet;

#[aggregate(name = "wallet")]
impl Wallet {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Activity { pub account: u64, pub wallet: u64 }

#[projection(name = "activity")]
impl Activity {
    #[on]
    fn account(&mut self, e: &Recorded<AccountEvent>) {
        if let AccountEvent::Deposited(d) = &e.payload {
            self.account += d.amount;
        }
    }
    #[on]
    fn wallet(&mut self, e: &Recorded<WalletEvent>) {
        let WalletEvent::Deposited(d) = &e.payload;
        self.wallet += d.amount;
    }
}

fn main() {
    assert!(Activity::accepts("Deposited"));
    assert!(Activity::accepts("Closed"));
    assert!(!Activity::accepts("Opened"));
}
