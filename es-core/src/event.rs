//! Domain events: the [`Event`] trait for one event type, the [`EventSet`] trait for the event
//! enum of an aggregate, [`IntoEvents`] for what command handlers return, and [`Recorded`], the
//! typed view of a stored event.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::store::EventError;
use crate::store::{Envelope, NewEvent, RecordedEvent, StreamId, envelope_deref};

/// One domain event type. Derive it with `#[derive(Event)]`.
///
/// `NAME` is what the store records as the event type (default: the type's name) and `VERSION`
/// its schema version (default: 1). Events are serialized as JSON.
///
/// # Schema evolution
///
/// A stored event keeps the name and version it was written with. When the type changes shape,
/// raise `VERSION` and give an upcaster per older version ([`Event::upcast`]): a payload stored
/// at version `k` goes through `upcast(k)`, `upcast(k + 1)`, ... up to `VERSION`, then
/// deserializes. [`ALIASES`](Event::ALIASES) are older names that decode as this event. With
/// the derive:
///
/// ```
/// use es_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// #[event(name = "bank.withdrawn", version = 2, aliases("withdrawn"),
///         upcast(from = 1, with = withdrawn_v1))]
/// pub struct Withdrawn { pub amount: u64, pub currency: String }
///
/// /// Version 1 had no currency.
/// fn withdrawn_v1(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
///     v["currency"] = "EUR".into();
///     Ok(v)
/// }
///
/// let old = Withdrawn::decode_payload(1, br#"{"amount":5}"#).unwrap();
/// assert_eq!(old, Withdrawn { amount: 5, currency: "EUR".into() });
/// assert!(<Withdrawn as EventSet>::contains("withdrawn"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "this type does not implement `Event`",
    note = "add `#[derive(Event)]` (and `Serialize`, `Deserialize`, `Clone`, `Debug`) to `{Self}`"
)]
pub trait Event: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The event type name recorded in the store.
    const NAME: &'static str;
    /// The event's schema version.
    const VERSION: u32;
    /// Older names stored events of this type may carry; they decode as this event, their
    /// stored version saying where the upcaster chain starts.
    const ALIASES: &'static [&'static str] = &[];

    /// Whether [`Event::upcast`] lifts older payloads. When false (no `upcast(...)` given), a
    /// payload of an older version deserializes as it is, as before versions had upcasters:
    /// fine while every change is one serde absorbs (a new `#[serde(default)]` field).
    const UPCASTERS: bool = false;

    /// Lifts a payload stored at version `from` to version `from + 1`. The derive writes it
    /// from the `upcast(from = k, with = f)` arguments and checks at compile time that every
    /// version from 1 to `VERSION - 1` has one. The default has no upcaster.
    fn upcast(from: u32, payload: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        let _ = payload;
        Err(UpcastError::new(format!(
            "no upcaster from version {from} (this code reads version {})",
            Self::VERSION
        )))
    }

    /// Whether a stored event named `event_type` is this event: its name or one of its aliases.
    fn answers_to(event_type: &str) -> bool {
        event_type == Self::NAME || Self::ALIASES.contains(&event_type)
    }

    /// Serializes the event's payload (JSON).
    fn encode_payload(&self) -> Result<Vec<u8>, EventError> {
        serde_json::to_vec(self).map_err(|e| EventError::Encode {
            event_type: Self::NAME.to_owned(),
            message: e.to_string(),
        })
    }

    /// Deserializes a payload recorded as `event_version` of this event: the one decode path
    /// of the framework (kernel rehydration, projections and the testkit all come here).
    ///
    /// A payload of the current version deserializes straight from its bytes. An older one is
    /// read as JSON, lifted through [`Event::upcast`] one version at a time, then deserialized.
    /// A version newer than [`Event::VERSION`] was written by newer code and is refused. Every
    /// failure is an [`EventError`] naming the event, the stored version and the reason.
    fn decode_payload(event_version: u32, payload: &[u8]) -> Result<Self, EventError> {
        decode_payload::<Self>(event_version, payload)
    }
}

/// The body of [`Event::decode_payload`], kept out of the trait so that an impl cannot change it.
///
/// The current version (the hot path: every rehydration and projection) deserializes straight
/// from the bytes, inlined into the generated decode; older and newer versions go through
/// [`decode_other_version`], kept out of line so the common case stays small.
#[inline]
fn decode_payload<E: Event>(event_version: u32, payload: &[u8]) -> Result<E, EventError> {
    // A payload still holding PII fields (read without the kernel's keys, or in flight) reads
    // with each field's plaintext when open and its replacement when sealed.
    if crate::erasure::format::may_hold_pii(payload) {
        return decode_with_pii::<E>(event_version, payload);
    }
    // Stores hold versions from 1; a 0 (written by hand) reads as the first version.
    let stored = event_version.max(1);
    if stored == E::VERSION || (stored < E::VERSION && !E::UPCASTERS) {
        return match serde_json::from_slice(payload) {
            Ok(event) => Ok(event),
            Err(e) => Err(payload_error::<E>(event_version, &e)),
        };
    }
    decode_other_version::<E>(event_version, stored, payload)
}

/// A payload with PII fields: decoded as it reads without keys.
#[cold]
#[inline(never)]
fn decode_with_pii<E: Event>(event_version: u32, payload: &[u8]) -> Result<E, EventError> {
    match crate::erasure::format::without_keys(payload) {
        Some(Ok(plain)) => decode_payload::<E>(event_version, &plain),
        Some(Err(e)) => Err(EventError::Payload {
            event_type: E::NAME.to_owned(),
            version: event_version,
            message: e.to_string(),
        }),
        None => {
            let stored = event_version.max(1);
            if stored == E::VERSION || (stored < E::VERSION && !E::UPCASTERS) {
                return serde_json::from_slice(payload)
                    .map_err(|e| payload_error::<E>(event_version, &e));
            }
            decode_other_version::<E>(event_version, stored, payload)
        }
    }
}

/// An event stored at a version other than [`Event::VERSION`]: refused when newer, lifted through
/// the upcaster chain when older.
#[cold]
#[inline(never)]
fn decode_other_version<E: Event>(
    event_version: u32,
    stored: u32,
    payload: &[u8],
) -> Result<E, EventError> {
    if stored > E::VERSION {
        return Err(EventError::UnsupportedVersion {
            event_type: E::NAME.to_owned(),
            version: event_version,
            supported: E::VERSION,
        });
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| payload_error::<E>(event_version, &e))?;
    for from in stored..E::VERSION {
        value = E::upcast(from, value).map_err(|e| EventError::Upcast {
            event_type: E::NAME.to_owned(),
            version: event_version,
            from,
            message: e.message,
        })?;
    }
    serde_json::from_value(value).map_err(|e| payload_error::<E>(event_version, &e))
}

/// A payload that does not deserialize (before or after the upcaster chain).
#[cold]
#[inline(never)]
fn payload_error<E: Event>(version: u32, error: &serde_json::Error) -> EventError {
    EventError::Payload {
        event_type: E::NAME.to_owned(),
        version,
        message: error.to_string(),
    }
}

/// Why an upcaster could not lift a payload: its message is reported verbatim in
/// [`EventError::Upcast`].
///
/// ```
/// use es_core::prelude::*;
///
/// fn v1(v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
///     if v.get("amount").is_none() {
///         return Err(UpcastError::new("version 1 without an amount"));
///     }
///     Ok(v)
/// }
/// assert_eq!(v1(serde_json::json!({})).unwrap_err().message(), "version 1 without an amount");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpcastError {
    message: String,
}

impl UpcastError {
    /// An upcaster's failure, with the message to report.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The set of events of one aggregate: the enum `#[aggregate]` generates (`{Type}Event`).
///
/// It encodes each variant under its event name and version, and decodes a stored event back
/// into the right variant. Decoding an unknown name or a bad payload is an [`EventError`].
pub trait EventSet: Clone + Debug + Send + Sync + Sized + 'static {
    /// The names of every event in the set.
    const NAMES: &'static [&'static str];
    /// The aliases of each event, in the order of [`EventSet::NAMES`]: `NAME_ALIASES[i]` are older
    /// names that decode as `NAMES[i]` (see [`Event::ALIASES`]). Empty when none has any.
    const NAME_ALIASES: &'static [&'static [&'static str]] = &[];

    /// The name of this event.
    fn event_type(&self) -> &'static str;

    /// The schema version of this event.
    fn event_version(&self) -> u32;

    /// Serializes this event's payload.
    fn encode(&self) -> Result<Vec<u8>, EventError>;

    /// Rebuilds an event from its stored name, version and payload.
    fn decode(event_type: &str, event_version: u32, payload: &[u8]) -> Result<Self, EventError>;

    /// The Rust type of each event of the set, in the order of [`EventSet::NAMES`]: its
    /// `TypeId` and its name. [`KernelBuilder::build`](crate::kernel::KernelBuilder::build)
    /// uses them to refuse one stored name (or alias) standing for two different Rust types
    /// across the registered aggregates. `#[aggregate]` generates it; a hand-written set that
    /// keeps the default (empty) is left out of that check.
    fn event_types() -> Vec<(std::any::TypeId, &'static str)> {
        Vec::new()
    }

    /// Whether the set decodes an event of this stored name: one of its names or aliases.
    /// Generated projection filters ask this, so they accept aliases too.
    fn contains(event_type: &str) -> bool {
        Self::NAMES.contains(&event_type)
            || Self::NAME_ALIASES
                .iter()
                .any(|aliases| aliases.contains(&event_type))
    }

    /// Encodes this event into a [`NewEvent`] ready to append.
    fn to_new_event(&self) -> Result<NewEvent, EventError> {
        Ok(NewEvent::new(self.event_type(), self.encode()?).version(self.event_version()))
    }

    /// Decodes a recorded event.
    fn from_recorded(event: &RecordedEvent) -> Result<Self, EventError> {
        Self::decode(&event.event_type, event.event_version, &event.payload)
    }
}

/// The first stored name an event set could not tell apart: an alias equal to another event's
/// name, or one alias of two events, as a message for [`BuildError`]. `#[aggregate]` checks the
/// same at compile time; this covers hand-written sets.
///
/// [`BuildError`]: crate::kernel::BuildError
pub(crate) fn ambiguous_name<E: EventSet>() -> Option<String> {
    let mut seen: Vec<(&str, &str)> = E::NAMES.iter().map(|name| (*name, *name)).collect();
    for (name, aliases) in E::NAMES.iter().zip(E::NAME_ALIASES) {
        for alias in *aliases {
            if let Some((_, owner)) = seen.iter().find(|(stored, _)| stored == alias) {
                let owner_kind = if owner == alias {
                    "the name of"
                } else {
                    "an alias of"
                };
                return Some(format!(
                    "the alias `{alias}` of event `{name}` is also {owner_kind} event `{owner}`: \
                     stored events under it could not be told apart; remove one of the two"
                ));
            }
            seen.push((alias, name));
        }
    }
    None
}

/// Every single event type is also a set of one event.
impl<E: Event> EventSet for E {
    const NAMES: &'static [&'static str] = &[E::NAME];
    const NAME_ALIASES: &'static [&'static [&'static str]] = &[E::ALIASES];

    fn contains(event_type: &str) -> bool {
        E::answers_to(event_type)
    }

    fn event_types() -> Vec<(std::any::TypeId, &'static str)> {
        vec![(std::any::TypeId::of::<E>(), std::any::type_name::<E>())]
    }

    fn event_type(&self) -> &'static str {
        E::NAME
    }

    fn event_version(&self) -> u32 {
        E::VERSION
    }

    fn encode(&self) -> Result<Vec<u8>, EventError> {
        self.encode_payload()
    }

    fn decode(event_type: &str, event_version: u32, payload: &[u8]) -> Result<Self, EventError> {
        if !E::answers_to(event_type) {
            return Err(EventError::UnknownEvent {
                event_type: event_type.to_owned(),
            });
        }
        E::decode_payload(event_version, payload)
    }
}

/// What a command handler may return inside its `Ok`: one event, a `Vec` or `Option` of events,
/// `()` for none, or a tuple of events. `E` is the aggregate's event enum; `#[aggregate]` also
/// implements it for the enum itself, `Vec<E>` and `Option<E>` (a variable number of mixed
/// events).
#[diagnostic::on_unimplemented(
    message = "a command handler cannot return `{Self}` as events of `{E}`",
    label = "`{Self}` does not convert into `{E}`",
    note = "return one event, `Vec<_>` or `Option<_>` of events, `()` or a tuple of events, where every event type has an `#[apply]` method in this aggregate (that is what adds it to `{E}`) and `#[derive(Event)]`; or the aggregate's own event enum `{E}`: one, `Vec<{E}>` or `Option<{E}>`"
)]
pub trait IntoEvents<E> {
    /// The events, in order.
    fn into_events(self) -> Vec<E>;
}

impl<E> IntoEvents<E> for () {
    fn into_events(self) -> Vec<E> {
        Vec::new()
    }
}

impl<E, T: Event + Into<E>> IntoEvents<E> for T {
    fn into_events(self) -> Vec<E> {
        vec![self.into()]
    }
}

impl<E, T: Event + Into<E>> IntoEvents<E> for Vec<T> {
    fn into_events(self) -> Vec<E> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<E, T: Event + Into<E>> IntoEvents<E> for Option<T> {
    fn into_events(self) -> Vec<E> {
        self.into_iter().map(Into::into).collect()
    }
}

macro_rules! tuple_into_events {
    ($($name:ident),+) => {
        impl<E, $($name: Event + Into<E>),+> IntoEvents<E> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_events(self) -> Vec<E> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    };
}

tuple_into_events!(A);
tuple_into_events!(A, B);
tuple_into_events!(A, B, C);
tuple_into_events!(A, B, C, D);
tuple_into_events!(A, B, C, D, F);
tuple_into_events!(A, B, C, D, F, G);
tuple_into_events!(A, B, C, D, F, G, H);
tuple_into_events!(A, B, C, D, F, G, H, I);

/// The typed view of a [`RecordedEvent`]: every stored field, with the payload decoded into `E`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<E> {
    /// Global position.
    pub position: u64,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// The event's sequence in its stream.
    pub sequence: u64,
    /// The stored event name.
    pub event_type: String,
    /// The stored schema version.
    pub event_version: u32,
    /// When the event happened (the kernel's clock, or the store's time).
    pub timestamp: DateTime<Utc>,
    /// Its envelope: ids, tags and metadata (the fields read through `Deref`).
    pub envelope: Envelope,
    /// The decoded event.
    pub payload: E,
}

envelope_deref!([E] Recorded<E>);

impl<E: EventSet> Recorded<E> {
    /// Decodes a recorded event into its typed view.
    pub fn decode(event: &RecordedEvent) -> Result<Self, EventError> {
        Ok(Recorded {
            position: event.position,
            stream: event.stream.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            timestamp: event.timestamp,
            envelope: event.envelope.clone(),
            payload: E::from_recorded(event)?,
        })
    }
}
