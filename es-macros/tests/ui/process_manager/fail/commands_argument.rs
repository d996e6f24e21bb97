use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub amount: u64 }

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { amount: u64 }

#[process_manager(name = "flow")]
impl Flow {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<Requested>, out: &Commands) {
        self.amount = e.payload.amount;
        let _ = out;
    }
    #[rejected]
    fn refused(&mut self, _r: Rejection, out: &mut Commands) {
        out.finish();
    }
}

fn main() {}
