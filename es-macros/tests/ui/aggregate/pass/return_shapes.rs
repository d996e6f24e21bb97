#![deny(warnings)]
// A command may return one event, `Vec`, `Option`, `()` or a tuple of events; the aggregate
// arguments are optional (type name in snake_case, `Infallible` error); the command type may be
// written with a path; a `Result` alias with the error built in works.
use std::convert::Infallible;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

mod commands {
    #[derive(Debug, Clone)]
    pub struct Open;
}
#[derive(Debug, Clone)]
pub struct Many;
#[derive(Debug, Clone)]
pub struct Maybe;
#[derive(Debug, Clone)]
pub struct Nothing;
#[derive(Debug, Clone)]
pub struct Pair;

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Opened;
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Noted { pub text: String }

mod decided {
    pub type Result<T> = std::result::Result<T, std::convert::Infallible>;
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger { pub notes: Vec<String> }

#[aggregate]
impl Ledger {
    #[command]
    fn open(&self, _: commands::Open) -> Result<Opened, Infallible> { Ok(Opened) }
    #[command]
    fn many(&self, _: Many) -> Result<Vec<Noted>, Infallible> { Ok(vec![]) }
    #[command]
    fn maybe(&self, _: Maybe) -> decided::Result<Option<Noted>> { Ok(None) }
    #[command]
    fn nothing(&self, _: Nothing) -> Result<(), Infallible> { Ok(()) }
    #[command]
    fn pair(&self, _: Pair) -> Result<(Opened, Noted), Infallible> {
        Ok((Opened, Noted { text: "hi".into() }))
    }
    #[apply]
    fn opened(&mut self, _: &Opened) {}
    #[apply]
    fn noted(&mut self, e: &Noted) { self.notes.push(e.text.clone()); }
}

fn main() {
    assert_eq!(Ledger::TYPE, "ledger");
    let _: fn() -> LedgerCommand = || commands::Open.into();
    let events = Ledger::default().handle(Pair.into()).unwrap();
    assert_eq!(events.len(), 2);
}
