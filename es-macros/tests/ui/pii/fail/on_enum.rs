use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub enum Contact {
    Email(#[pii(subject = customer)] String),
}

fn main() {}
