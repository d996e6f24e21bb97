// Argument values of the wrong kind, and an argument given twice.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(name = account, error = "BankError")]
impl Account {}

#[derive(Default, Serialize, Deserialize)]
pub struct Other;

#[aggregate(name = "other", name = "other2", error)]
impl Other {}

fn main() {}
