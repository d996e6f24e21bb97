use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct TimedOut;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { amount: u64 }

#[process_manager(name = "flow")]
impl Flow {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<Requested>, _out: &mut Commands) {
        self.amount = e.payload.amount;
    }
    #[on(deadline)]
    fn expired(&mut self, _: &TimedOut, out: &mut Commands) {
        out.finish();
    }
    #[on(deadline)]
    fn expired_again(&mut self, _: &TimedOut, _out: &mut Commands) {}
}

fn main() {}
