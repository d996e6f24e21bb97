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
    fn expired(&mut self, _d: &Recorded<TimedOut>, _out: &mut Commands) {}
    #[on(deadline)]
    fn also_expired(&mut self, _d: TimedOut, _out: &mut Commands) {}
    #[on(deadline)]
    fn late(&mut self, _d: &TimedOut) {}
}

fn main() {}
