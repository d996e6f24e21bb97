use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub amount: u64 }

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { amount: u64 }

#[process_manager(name = "flow", batch = 3)]
impl Flow {
    #[on(begin)]
    fn requested(&mut self, e: &Recorded<Requested>, _out: &mut Commands) {
        self.amount = e.payload.amount;
    }
}

fn main() {}
