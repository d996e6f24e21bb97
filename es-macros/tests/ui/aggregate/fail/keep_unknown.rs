use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit { pub amount: u64 }

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account { pub balance: u64 }

#[aggregate(keep = forever)]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: cmd.amount })
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
}

mod quoted {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Other;

    #[aggregate(keep = "after_snapshot")]
    impl Other {
        #[apply]
        fn deposited(&mut self, _: &super::Deposited) {}
    }
}

fn main() {}
