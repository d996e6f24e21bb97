use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, Pii)]
pub struct Customer {
    pub id: String,
    #[pii(subject = id, redacted = 0)]
    pub email: String,
}

fn main() {}
