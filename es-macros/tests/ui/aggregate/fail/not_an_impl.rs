// `#[aggregate]` on a struct or a function.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[aggregate]
#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
fn deposit() {}

fn main() {}
