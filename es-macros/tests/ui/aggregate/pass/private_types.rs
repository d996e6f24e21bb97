#![deny(warnings)]
// Domain types less visible than the generated `pub` enums, in a module: no warnings.
mod bank {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone)]
    pub(crate) struct Open;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub(crate) struct Opened;

    #[derive(Default, Serialize, Deserialize)]
    pub(crate) struct Account {
        open: bool,
    }

    #[aggregate]
    impl Account {
        #[command]
        fn open(&self, _: Open) -> Result<Option<Opened>, std::convert::Infallible> {
            Ok((!self.open).then_some(Opened))
        }
        #[apply]
        fn opened(&mut self, _: &Opened) {
            self.open = true;
        }
    }

    pub(crate) fn run() -> usize {
        let account = Account::default();
        account.handle(Open.into()).map(|events| events.len()).unwrap_or(0)
    }
}

fn main() {
    assert_eq!(bank::run(), 1);
}
