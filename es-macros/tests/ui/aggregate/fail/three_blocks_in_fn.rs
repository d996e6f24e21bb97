// Three `#[aggregate]` blocks of one type inside a function body, each with commands and
// applies: one error per extra block, each saying to merge it, and nothing else (the first
// block generates the items of all three).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

fn main() {
    #[derive(Clone)]
    pub struct Open;
    #[derive(Clone)]
    pub struct Close;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Opened;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Closed;

    #[derive(Default, Serialize, Deserialize)]
    pub struct Door {
        open: bool,
    }

    #[aggregate]
    impl Door {
        #[command]
        fn open(&self, _: Open) -> Result<Opened, std::convert::Infallible> {
            Ok(Opened)
        }
    }

    #[aggregate]
    impl Door {
        #[apply]
        fn opened(&mut self, _: &Opened) {
            self.open = true;
        }
        #[command]
        fn close(&self, _: Close) -> Result<Closed, std::convert::Infallible> {
            Ok(Closed)
        }
    }

    #[aggregate]
    impl Door {
        #[apply]
        fn closed(&mut self, _: &Closed) {
            self.open = false;
        }
    }
}
