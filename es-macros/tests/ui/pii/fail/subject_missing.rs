use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Registered {
    pub customer: String,
    #[pii(redacted = String::new())]
    pub email: String,
}

fn main() {}
