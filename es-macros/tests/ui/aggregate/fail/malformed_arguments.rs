// Arguments syn's meta parser reads but that are not `key = value`: each mistake gets one error
// at its tokens, and reading goes on with the next argument.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct NoKey;

#[aggregate("no_key")]
impl NoKey {}

#[derive(Default, Serialize, Deserialize)]
pub struct NoEquals;

#[aggregate(name "no_equals", error(BankError))]
impl NoEquals {}

#[derive(Default, Serialize, Deserialize)]
pub struct NoValue;

#[aggregate(name =, error = std::fmt::Error)]
impl NoValue {}

#[derive(Default, Serialize, Deserialize)]
pub struct GenericValue;

#[aggregate(cache = std::collections::HashMap<String, u64>, name = 42)]
impl GenericValue {}

#[derive(Clone)]
pub struct Deposit;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default, Serialize, Deserialize)]
pub struct Helpers;

#[aggregate]
impl Helpers {
    #[command = "deposit"]
    fn deposit(&self, _: Deposit) -> Result<Deposited, std::convert::Infallible> { Ok(Deposited) }
    #[apply(42)]
    fn deposited(&mut self, _: &Deposited) {}
}

fn main() {}
