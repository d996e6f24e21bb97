use es_core::prelude::*;

#[derive(Default)]
pub struct Totals;

#[projection]
impl Totals {}

fn main() {}
