// Generic aggregates are not supported.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Account<T> { value: T }

#[aggregate]
impl<T: Default> Account<T> {}

fn main() {}
