// Two aggregates named `Account` in two modules, each with one `#[aggregate]` block (and the
// same method names): neither is taken for a second block of the other.
mod savings {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone)]
    pub struct Deposit;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Deposited;

    #[derive(Default, Serialize, Deserialize)]
    pub struct Account;

    #[aggregate(name = "savings_account")]
    impl Account {
        #[command]
        fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> {
            Ok(Deposited)
        }
        #[apply]
        fn deposited(&mut self, _: &Deposited) {}
    }
}

mod checking {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone)]
    pub struct Deposit;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Deposited;

    #[derive(Default, Serialize, Deserialize)]
    pub struct Account;

    #[aggregate(name = "checking_account")]
    impl Account {
        #[command]
        fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> {
            Ok(Deposited)
        }
        #[apply]
        fn deposited(&mut self, _: &Deposited) {}
    }
}

fn main() {
    let _ = savings::AccountCommand::Deposit(savings::Deposit);
    let _ = checking::AccountCommand::Deposit(checking::Deposit);
}
