//! Schema evolution through the public API: a property that payloads written at any older
//! version read back through the upcaster chain equal a typed model's upcast; the decode
//! errors; aliases in event sets; a hand-written event set whose alias clashes is refused by
//! the kernel builder; `AggregateTest::given_stored`.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::EventError;
use es_core::kernel::BuildError;
use es_core::prelude::*;
use es_core::testkit::AggregateTest;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Version 1: `{ n }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V1 {
    n: u32,
}

/// Version 2 added a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V2 {
    n: u32,
    label: String,
}

/// Version 3 renamed `n` to `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct V3 {
    count: u32,
    label: String,
}

/// Version 4, the current one, adds `double`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "item", version = 4, aliases("old.item", "older.item"),
        upcast(from = 1, with = item_v1), upcast(from = 2, with = item_v2),
        upcast(from = 3, with = item_v3))]
struct Item {
    count: u32,
    label: String,
    double: u64,
}

fn item_v1(mut v: Value) -> Result<Value, UpcastError> {
    v["label"] = "none".into();
    Ok(v)
}

fn item_v2(v: Value) -> Result<Value, UpcastError> {
    let n = v
        .get("n")
        .cloned()
        .ok_or_else(|| UpcastError::new("version 2 without `n`"))?;
    Ok(json!({ "count": n, "label": v["label"] }))
}

fn item_v3(mut v: Value) -> Result<Value, UpcastError> {
    let count = v["count"]
        .as_u64()
        .ok_or_else(|| UpcastError::new("`count` is not a number"))?;
    v["double"] = (count * 2).into();
    Ok(v)
}

/// The model: the same upcasts on typed values.
fn model_v1(v: V1) -> V2 {
    V2 {
        n: v.n,
        label: "none".into(),
    }
}
fn model_v2(v: V2) -> V3 {
    V3 {
        count: v.n,
        label: v.label,
    }
}
fn model_v3(v: V3) -> Item {
    Item {
        count: v.count,
        label: v.label,
        double: u64::from(v.count) * 2,
    }
}

/// A payload stored at some version, with what the model makes of it.
fn stored() -> impl Strategy<Value = (u32, Vec<u8>, Item)> {
    (1u32..=4, any::<u32>(), "[a-zA-Z0-9 é\"\\\\]{0,12}").prop_map(|(version, n, label)| {
        match version {
            1 => {
                let v = V1 { n };
                (
                    1,
                    serde_json::to_vec(&v).unwrap(),
                    model_v3(model_v2(model_v1(v))),
                )
            }
            2 => {
                let v = V2 { n, label };
                (2, serde_json::to_vec(&v).unwrap(), model_v3(model_v2(v)))
            }
            3 => {
                let v = V3 { count: n, label };
                (3, serde_json::to_vec(&v).unwrap(), model_v3(v))
            }
            _ => {
                let v = Item {
                    count: n,
                    label,
                    double: u64::from(n) * 2,
                };
                (4, serde_json::to_vec(&v).unwrap(), v)
            }
        }
    })
}

proptest! {
    #[test]
    fn payloads_of_any_version_read_back_as_the_model_upcasts_them(
        (version, bytes, expected) in stored(),
        name in prop::sample::select(vec!["item", "old.item", "older.item"]),
    ) {
        prop_assert_eq!(Item::decode_payload(version, &bytes).unwrap(), expected.clone());
        // The same through the event set (name or alias), as the kernel and projections do.
        prop_assert_eq!(<Item as EventSet>::decode(name, version, &bytes).unwrap(), expected);
    }

    #[test]
    fn versions_above_the_current_one_are_refused(version in 5u32.., n in any::<u32>()) {
        let bytes = serde_json::to_vec(&json!({ "count": n })).unwrap();
        let error = Item::decode_payload(version, &bytes).unwrap_err();
        prop_assert_eq!(error, EventError::UnsupportedVersion {
            event_type: "item".into(),
            version,
            supported: 4,
        });
    }
}

#[test]
fn decode_errors_name_the_event_the_version_and_the_reason() {
    let error = Item::decode_payload(2, br#"{"label":"x"}"#).unwrap_err();
    assert_eq!(
        error,
        EventError::Upcast {
            event_type: "item".into(),
            version: 2,
            from: 2,
            message: "version 2 without `n`".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot upcast event `item` stored at version 2: the upcaster from version 2 failed: \
         version 2 without `n`"
    );
    let error = Item::decode_payload(1, b"not json").unwrap_err();
    assert!(
        matches!(&error, EventError::Payload { event_type, version: 1, .. } if event_type == "item"),
        "{error:?}"
    );
    let error = Item::decode_payload(4, br#"{"count":1}"#).unwrap_err();
    assert!(error.to_string().contains("stored at version 4"), "{error}");
    let error = <Item as EventSet>::decode("itemz", 4, b"{}").unwrap_err();
    assert_eq!(
        error,
        EventError::UnknownEvent {
            event_type: "itemz".into()
        }
    );
}

#[test]
fn an_event_set_answers_to_names_and_aliases() {
    assert!(<Item as EventSet>::contains("item"));
    assert!(<Item as EventSet>::contains("old.item"));
    assert!(!<Item as EventSet>::contains("itemz"));
    assert_eq!(
        <Item as EventSet>::NAME_ALIASES,
        [["old.item", "older.item"]]
    );
}

/// A hand-written event set whose alias is another of its events' names: `#[aggregate]` would
/// refuse it at compile time; the kernel builder refuses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Clashing {
    Item(Item),
}

impl EventSet for Clashing {
    const NAMES: &'static [&'static str] = &["item", "other"];
    const NAME_ALIASES: &'static [&'static [&'static str]] = &[&[], &["item"]];
    fn event_type(&self) -> &'static str {
        "item"
    }
    fn event_version(&self) -> u32 {
        4
    }
    fn encode(&self) -> Result<Vec<u8>, EventError> {
        let Clashing::Item(item) = self;
        item.encode_payload()
    }
    fn decode(event_type: &str, version: u32, payload: &[u8]) -> Result<Self, EventError> {
        <Item as EventSet>::decode(event_type, version, payload).map(Clashing::Item)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Holder;

impl Aggregate for Holder {
    const TYPE: &'static str = "holder";
    type Command = ();
    type Event = Clashing;
    type Error = std::convert::Infallible;
    fn handle(&self, _: ()) -> Result<Vec<Clashing>, Self::Error> {
        Ok(Vec::new())
    }
    fn apply(&mut self, _: &Clashing) {}
}

#[tokio::test]
async fn the_builder_refuses_an_alias_equal_to_another_events_name() {
    let error = Kernel::builder()
        .store(MemoryStore::new())
        .register::<Holder>()
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &error,
            BuildError::AmbiguousEventName {
                aggregate: "holder",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "aggregate `holder`: the alias `item` of event `other` is also the name of event \
         `item`: stored events under it could not be told apart; remove one of the two"
    );
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Count {
    n: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[aggregate]
impl Counter {
    #[command]
    fn count(&self, cmd: Count) -> Result<Item, std::convert::Infallible> {
        Ok(Item {
            count: cmd.n,
            label: String::new(),
            double: u64::from(cmd.n) * 2,
        })
    }

    #[apply]
    fn item(&mut self, e: &Item) {
        self.total += e.double;
    }
}

#[test]
fn the_testkit_takes_stored_events_of_old_versions() {
    let given = [
        NewEvent::new("old.item", br#"{"n":1}"#.to_vec()).version(1),
        NewEvent::new("item", br#"{"count":2,"label":"x"}"#.to_vec()).version(3),
    ];
    let test = AggregateTest::<Counter>::given_stored(given).unwrap();
    assert_eq!(test.state().total, 2 + 4);
    test.when(Count { n: 3 })
        .then_state(|c| assert_eq!(c.total, 6 + 6));
    let error =
        AggregateTest::<Counter>::given_stored([NewEvent::new("item", b"{}".to_vec()).version(9)])
            .err()
            .unwrap();
    assert!(matches!(
        error,
        EventError::UnsupportedVersion { version: 9, .. }
    ));
}
