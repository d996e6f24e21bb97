// A generic projection: one name, one checkpoint, so one concrete type.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited;

#[derive(Default)]
pub struct Totals<T> { pub seen: Vec<T> }

#[projection(name = "totals")]
impl<T: Default + Send + Sync + 'static> Totals<T> {
    #[on]
    fn deposited(&mut self, _: &Recorded<Deposited>) {}
}

fn main() {}
