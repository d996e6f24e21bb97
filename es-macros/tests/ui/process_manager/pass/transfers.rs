use es_core::prelude::*;
use es_core::store::RecordedEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Withdrawn { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub from: String, pub amount: u64 }

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct Refused;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account { balance: u64 }

#[aggregate(name = "account", error = Refused)]
impl Account {
    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, Refused> {
        Ok(Withdrawn { amount: cmd.amount })
    }
    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) { self.balance -= e.amount; }
}

fn by_tag(e: &RecordedEvent) -> Option<String> {
    e.tags().first().cloned()
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { from: String, amount: u64 }

#[process_manager(name = "flow", key = by_tag)]
impl Flow {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<Requested>, out: &mut Commands) {
        self.from = e.payload.from.clone();
        self.amount = e.payload.amount;
        out.dispatch::<Account>(&self.from, Withdraw { amount: self.amount });
    }
    #[on]
    fn withdrawn(&mut self, _: &Recorded<AccountEvent>, out: &mut Commands) -> Result<(), Refused> {
        out.finish();
        Ok(())
    }
    #[rejected]
    fn refused(&mut self, _: &Rejection, out: &mut Commands) {
        out.finish();
    }
}

fn main() {
    assert_eq!(<Flow as ProcessManager>::NAME, "flow");
    assert!(<Flow as ProcessManager>::accepts("Requested"));
    assert!(<Flow as ProcessManager>::accepts("Withdrawn"));
    assert!(!<Flow as ProcessManager>::accepts("Other"));
}
