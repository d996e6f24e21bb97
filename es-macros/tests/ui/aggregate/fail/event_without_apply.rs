// A command returns an event that has no `#[apply]`: it is not in `AccountEvent`.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct Close;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Closed;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn close(&self, _: Close) -> Result<Vec<Closed>, std::convert::Infallible> { Ok(vec![Closed]) }
    #[apply]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
