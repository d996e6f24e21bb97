use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Registered {
    pub customer: Vec<u8>,
    #[pii(subject = customer)]
    pub email: String,
}

fn main() {}
