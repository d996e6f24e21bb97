// `#[on]` types that share a stored name: one stored event would match two handlers.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

mod bank {
    use super::*;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Deposited;
}
mod wallet {
    use super::*;
    #[derive(Debug, Clone, Serialize, Deserialize, Event)]
    pub struct Deposited;
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "Opened")]
pub struct AccountOpened;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Opened;

#[derive(Default)]
pub struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn bank(&mut self, _: &Recorded<bank::Deposited>) {}
    #[on]
    fn wallet(&mut self, _: &Recorded<wallet::Deposited>) {}
    #[on]
    fn account_opened(&mut self, _: &Recorded<AccountOpened>) {}
    #[on]
    fn opened(&mut self, _: &Recorded<Opened>) {}
}

fn main() {}
