// Names that are not string literals: a number, a constant's path, a positional string (as
// `tracing` or `axum` attributes take), and a name given twice.
use es_core::prelude::*;

const NAME: &str = "totals";

#[derive(Default)]
pub struct A;
#[projection(name = 42)]
impl A {}

#[derive(Default)]
pub struct B;
#[projection(name = NAME)]
impl B {}

#[derive(Default)]
pub struct C;
#[projection("totals")]
impl C {}

#[derive(Default)]
pub struct D;
#[projection(name = "d", name = "d2")]
impl D {}

fn main() {}
