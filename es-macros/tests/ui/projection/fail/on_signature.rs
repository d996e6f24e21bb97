use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct A;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct B;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct C;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct D;

#[derive(Default)]
pub struct Totals;

#[projection(name = "totals")]
impl Totals {
    #[on]
    fn a(&self, _: &Recorded<A>) {}
    #[on]
    fn b(&mut self, _: &B) {}
    #[on]
    fn c(&mut self, _: Recorded<C>) {}
    #[on]
    fn d(&mut self) {}
}

fn main() {}
