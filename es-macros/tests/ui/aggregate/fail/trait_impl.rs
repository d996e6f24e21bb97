// `#[aggregate]` writes the `Aggregate` impl itself: it goes on an inherent impl block.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

pub trait Domain {
    fn deposit(&self);
}

#[aggregate]
impl Domain for Account {
    #[command]
    fn deposit(&self) {}
}

fn main() {}
