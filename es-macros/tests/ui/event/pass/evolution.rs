use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version 1 had no currency.
fn withdrawn_v1(mut v: Value) -> Result<Value, UpcastError> {
    v["currency"] = "EUR".into();
    Ok(v)
}

/// Version 2 had no note.
fn withdrawn_v2(mut v: Value) -> Result<Value, UpcastError> {
    v["note"] = Value::Null;
    Ok(v)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 3, aliases("withdrawn"),
        upcast(from = 2, with = withdrawn_v2), upcast(from = 1, with = self::withdrawn_v1))]
pub struct Withdrawn { pub amount: u64, pub currency: String, pub note: Option<String> }

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw { pub amount: u64 }

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account { pub balance: i64 }

#[aggregate(name = "account", snapshot_version = 2)]
impl Account {
    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, std::convert::Infallible> {
        Ok(Withdrawn { amount: cmd.amount, currency: "EUR".into(), note: None })
    }
    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) { self.balance -= e.amount as i64; }
}

fn main() {
    assert_eq!(<Withdrawn as Event>::VERSION, 3);
    assert_eq!(<Withdrawn as Event>::ALIASES, ["withdrawn"]);
    assert_eq!(<Account as Aggregate>::SNAPSHOT_VERSION, 2);
    let old = AccountEvent::decode("withdrawn", 1, br#"{"amount":3}"#).unwrap();
    let AccountEvent::Withdrawn(w) = old;
    assert_eq!(w, Withdrawn { amount: 3, currency: "EUR".into(), note: None });
    assert!(<AccountEvent as EventSet>::contains("withdrawn"));
}
