// Misspelt keys get a "did you mean".
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("bank error")]
pub struct BankError;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(aggregate_type = "account", errors = BankError)]
impl Account {}

fn main() {}
