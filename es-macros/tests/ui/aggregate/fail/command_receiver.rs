// A command handler reads the state through `&self`: not `&mut self`, `self`, or nothing.
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
pub struct A;
#[derive(Clone)]
pub struct B;
#[derive(Clone)]
pub struct C;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Done;

#[derive(Default, Serialize, Deserialize)]
pub struct Account;

#[aggregate]
impl Account {
    #[command]
    fn a(&mut self, _: A) -> Result<Done, std::convert::Infallible> { Ok(Done) }
    #[command]
    fn b(self, _: B) -> Result<Done, std::convert::Infallible> { Ok(Done) }
    #[command]
    fn c(_: C) -> Result<Done, std::convert::Infallible> { Ok(Done) }
    #[apply]
    fn done(&mut self, _: &Done) {}
}

fn main() {
    // The generated names still exist: the errors above are the only ones.
    let _ = AccountCommand::from(A);
    let _ = <Account as Aggregate>::TYPE;
}
