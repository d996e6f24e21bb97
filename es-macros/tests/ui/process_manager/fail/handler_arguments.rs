use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Done;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { amount: u64 }

#[process_manager(name = "flow")]
impl Flow {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<Requested>) {
        self.amount = e.payload.amount;
    }
    #[on]
    fn done(&mut self, _e: Done, out: &mut Commands) {
        out.finish();
    }
    #[rejected]
    fn refused(&self, _r: &Rejection, _out: &mut Commands) {}
}

fn main() {}
