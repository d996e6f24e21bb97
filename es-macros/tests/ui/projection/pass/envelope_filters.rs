use es_core::prelude::*;
use es_core::projection::Projection;
use es_core::store::EventFilter;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
pub struct Deposited { pub amount: u64 }

mod filters {
    use es_core::store::RecordedEvent;

    pub fn only_vip(event: &RecordedEvent) -> bool {
        event.tags().iter().any(|t| t == "vip")
    }
}

#[derive(Default)]
pub struct VipBankDeposits { total: u64 }

#[projection(name = "vip_bank_deposits", aggregate = "bank_account", filter = filters::only_vip)]
impl VipBankDeposits {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) { self.total += e.payload.amount; }
}

fn main() {
    assert_eq!(VipBankDeposits::AGGREGATE_TYPE, Some("bank_account"));
    assert!(VipBankDeposits::FILTER.is_some());
    let filter: EventFilter = VipBankDeposits::event_filter();
    assert_eq!(filter.aggregate_type, Some("bank_account"));
    let mut event = es_core::testkit::recorded("bank_account", "a", &Deposited { amount: 5 }).unwrap();
    event.tags.push("vip".to_owned());
    assert!(filter.matches(&event));
    let mut state = VipBankDeposits::default();
    state.handle(&event).unwrap();
    assert_eq!(state.total, 5);
}
