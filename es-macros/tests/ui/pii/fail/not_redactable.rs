use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email(String);

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Registered {
    pub customer: String,
    #[pii(subject = customer)]
    pub email: Email,
}

fn main() {}
