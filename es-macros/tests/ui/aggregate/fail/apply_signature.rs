// An `#[apply]` handler is `fn x(&mut self, e: &Event)`.
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

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[apply]
    fn a(&self, _: &A) {}
    #[apply]
    fn b(&mut self, _: B) {}
    #[apply]
    fn c(&mut self, _: &mut C) {}
    #[apply]
    fn d(&mut self) {}
}

fn main() {}
