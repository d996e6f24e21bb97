use std::time::Duration;

use es_core::prelude::*;
use es_core::testkit::{ProcessTest, correlated};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Requested { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Answered;

/// A deadline: a user type with `#[derive(Event)]` (it is stored with the instance).
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct TimedOut { pub amount: u64 }
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "flow.reminder", version = 2)]
pub struct Reminder;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Flow { amount: u64, timed_out: bool, reminded: u32 }

#[process_manager(name = "flow")]
impl Flow {
    #[on(start)]
    fn requested(&mut self, e: &Recorded<Requested>, out: &mut Commands) {
        self.amount = e.payload.amount;
        out.schedule(Duration::from_secs(30), TimedOut { amount: self.amount });
        out.schedule(Duration::from_secs(10), Reminder);
    }
    #[on]
    fn answered(&mut self, _: &Recorded<Answered>, out: &mut Commands) {
        out.cancel::<TimedOut>();
    }
    #[on(deadline)]
    fn expired(&mut self, d: &TimedOut, out: &mut Commands) {
        self.timed_out = d.amount == self.amount;
        out.finish();
    }
    #[on(deadline)]
    fn remind(&mut self, _: &Reminder, _out: &mut Commands) -> Result<(), std::fmt::Error> {
        self.reminded += 1;
        Ok(())
    }
}

fn main() {
    assert!(!<Flow as ProcessManager>::accepts("TimedOut"));
    ProcessTest::<Flow>::given([correlated("desk", "d", "f-1", Requested { amount: 5 })])
        .advance(Duration::from_secs(60))
        .then_finished()
        .then_state(|f| assert!(f.timed_out && f.reminded == 1));
}
