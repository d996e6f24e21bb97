//! `#[derive(Event)]`: names, versions and the payload codec it plugs into.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use es_core::event::EventError;
use es_core::prelude::*;
use es_examples::bank::{Deposited, Withdrawn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(version = 3)]
struct Renamed {
    to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "ledger.closed")]
#[event(version = 2)]
enum Closed {
    ByCustomer,
    ByBank { reason: String },
}

#[test]
fn name_defaults_to_the_type_name_and_version_to_one() {
    assert_eq!(Deposited::NAME, "Deposited");
    assert_eq!(Deposited::VERSION, 1);
}

#[test]
fn name_and_version_attributes() {
    assert_eq!(Withdrawn::NAME, "bank.withdrawn");
    assert_eq!(Withdrawn::VERSION, 1);
    assert_eq!(Renamed::NAME, "Renamed");
    assert_eq!(Renamed::VERSION, 3);
}

#[test]
fn arguments_may_be_split_over_several_attributes_and_enums_are_events() {
    assert_eq!(Closed::NAME, "ledger.closed");
    assert_eq!(Closed::VERSION, 2);
    let event = Closed::ByBank {
        reason: "fraud".into(),
    };
    let bytes = event.encode_payload().unwrap();
    assert_eq!(Closed::decode_payload(2, &bytes).unwrap(), event);
}

#[test]
fn payload_round_trip_and_typed_errors() {
    let bytes = Withdrawn { amount: 7 }.encode_payload().unwrap();
    assert_eq!(bytes, br#"{"amount":7}"#);
    assert_eq!(
        Withdrawn::decode_payload(1, &bytes).unwrap(),
        Withdrawn { amount: 7 }
    );
    assert!(matches!(
        Withdrawn::decode_payload(1, b"not json"),
        Err(EventError::Payload { event_type, .. }) if event_type == "bank.withdrawn"
    ));
    assert_eq!(
        Withdrawn::decode_payload(2, &bytes),
        Err(EventError::UnsupportedVersion {
            event_type: "bank.withdrawn".into(),
            version: 2,
            supported: 1,
        })
    );
}

#[test]
fn a_single_event_is_a_set_of_one() {
    assert_eq!(<Renamed as EventSet>::NAMES, &["Renamed"]);
    let event = Renamed { to: "x".into() };
    assert_eq!(event.event_version(), 3);
    let new = event.to_new_event().unwrap();
    assert_eq!(new.event_type, "Renamed");
    assert_eq!(new.event_version, 3);
}
