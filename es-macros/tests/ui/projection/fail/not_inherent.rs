use es_core::prelude::*;

#[derive(Default)]
pub struct Totals;

#[projection(name = "totals")]
pub struct Counts;

#[projection(name = "totals")]
impl Default for Counts {
    fn default() -> Self { Counts }
}

fn main() {}
