// `error = ...` names a type that is not a `std::error::Error` (a plain enum without
// `thiserror::Error`).
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug)]
pub enum BankError { Insufficient }

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(error = BankError)]
impl Account {}

fn main() {}
