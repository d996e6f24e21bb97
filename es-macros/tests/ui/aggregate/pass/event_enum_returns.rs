// A handler that decides a variable number of mixed events returns the aggregate's own event
// enum: one, `Vec<_>` or `Option<_>` of it.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settle { pub deposits: Vec<u64>, pub fee: Option<u64> }
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Open;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Close;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct FeeCharged { pub amount: u64 }
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Opened;

#[derive(Debug, thiserror::Error)]
#[error("closed")]
pub struct Closed;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account { pub balance: i64, pub open: bool }

#[aggregate(error = Closed)]
impl Account {
    #[command]
    fn settle(&self, cmd: Settle) -> Result<Vec<AccountEvent>, Closed> {
        let mut events: Vec<AccountEvent> =
            cmd.deposits.into_iter().map(|amount| Deposited { amount }.into()).collect();
        if let Some(amount) = cmd.fee {
            events.push(FeeCharged { amount }.into());
        }
        Ok(events)
    }
    #[command]
    fn open(&self, _: Open) -> Result<Option<AccountEvent>, Closed> {
        Ok((!self.open).then(|| Opened.into()))
    }
    #[command]
    fn close(&self, _: Close) -> Result<AccountEvent, Closed> {
        Ok(AccountEvent::FeeCharged(FeeCharged { amount: 1 }))
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) { self.balance += e.amount as i64; }
    #[apply]
    fn fee_charged(&mut self, e: &FeeCharged) { self.balance -= e.amount as i64; }
    #[apply]
    fn opened(&mut self, _: &Opened) { self.open = true; }
}

fn main() {
    let account = Account::default();
    let events = account
        .handle(Settle { deposits: vec![5, 7], fee: Some(2) }.into())
        .unwrap_or_default();
    assert_eq!(events.len(), 3);
    assert_eq!(account.handle(Open.into()).map(|e| e.len()).ok(), Some(1));
    assert_eq!(account.handle(Close.into()).map(|e| e.len()).ok(), Some(1));
}
