// The aggregate type is stored in every stream id and matched exactly: no spaces.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate(name = "bank account")]
impl Account {}

fn main() {}
