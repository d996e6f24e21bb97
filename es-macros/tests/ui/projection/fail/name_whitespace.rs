// A projection's name is its checkpoint key (and what `es projections reset` takes): no spaces.
use es_core::prelude::*;

#[derive(Default)]
pub struct Totals;

#[projection(name = "bank totals ")]
impl Totals {}

fn main() {}
