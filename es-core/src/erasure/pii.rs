//! What `#[pii]` generates code against: the fields of a value that are personal data.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::format::{FORMAT_VERSION, PiiValue};

/// One personal-data field of a value, as `#[pii(subject = ..)]` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PiiField {
    /// The field's name in the serialized JSON object.
    pub name: &'static str,
    /// The subject whose key encrypts it.
    pub subject: String,
    /// The JSON of the value read in its place once the subject is forgotten.
    pub redacted: Value,
}

/// A type with personal-data fields: `#[derive(Event)]` implements it for events with
/// `#[pii]` fields and `#[derive(Pii)]` for aggregate states (so that snapshots hold them
/// encrypted too).
///
/// ```
/// use es_core::erasure::PiiFields;
/// use es_core::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
/// pub struct Registered {
///     pub customer: String,
///     #[pii(subject = customer, redacted = "<erased>".to_owned())]
///     pub email: String,
/// }
///
/// let e = Registered { customer: "c-1".into(), email: "ada@example.com".into() };
/// let fields = e.pii_fields();
/// assert_eq!((fields[0].name, fields[0].subject.as_str()), ("email", "c-1"));
/// assert_eq!(fields[0].redacted, "<erased>");
/// ```
pub trait PiiFields {
    /// The personal-data fields of this value, with their subjects.
    fn pii_fields(&self) -> Vec<PiiField>;
}

/// What a `#[pii(subject = ..)]` field (or function) may return: a value naming a subject.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a PII subject",
    label = "this is not a subject id",
    note = "`subject = ..` names a field (or a function of the value) whose type implements \
            `PiiSubject`: `String`, `str`, `Arc<str>`, an integer or a `Uuid`"
)]
pub trait PiiSubject {
    /// The subject's id.
    fn subject_id(&self) -> String;
}

impl<T: PiiSubject + ?Sized> PiiSubject for &T {
    fn subject_id(&self) -> String {
        (**self).subject_id()
    }
}

impl PiiSubject for str {
    fn subject_id(&self) -> String {
        self.to_owned()
    }
}

impl PiiSubject for String {
    fn subject_id(&self) -> String {
        self.clone()
    }
}

impl PiiSubject for Arc<str> {
    fn subject_id(&self) -> String {
        (**self).to_owned()
    }
}

impl PiiSubject for uuid::Uuid {
    fn subject_id(&self) -> String {
        self.to_string()
    }
}

macro_rules! integer_subjects {
    ($($t:ty),*) => {$(
        impl PiiSubject for $t {
            fn subject_id(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

integer_subjects!(u16, u32, u64, u128, i16, i32, i64, i128, usize);

/// A field type `#[pii]` can redact without a `redacted = ..` expression: one with a
/// `Default`.
#[diagnostic::on_unimplemented(
    message = "a `#[pii]` field of type `{Self}` cannot be redacted: `{Self}` has no `Default`",
    label = "no replacement for this field once its subject is forgotten",
    note = "give the replacement: `#[pii(subject = .., redacted = <expression of this type>)]`, \
            or implement `Default` for `{Self}`"
)]
pub trait Redactable: Sized {
    /// The value read in place of the field once its subject is forgotten.
    fn redacted() -> Self;
}

impl<T: Default> Redactable for T {
    fn redacted() -> Self {
        T::default()
    }
}

/// Serializes `value` with its `fields` marked open (plaintext still in place), for the
/// kernel to seal before they reach a store. `scope` is the event name or aggregate type.
pub fn encode_open<T: Serialize + ?Sized>(
    value: &T,
    scope: &str,
    fields: Vec<PiiField>,
) -> Result<Vec<u8>, serde_json::Error> {
    if fields.is_empty() {
        return serde_json::to_vec(value);
    }
    let mut json = serde_json::to_value(value)?;
    if let Value::Object(map) = &mut json {
        for field in fields {
            if let Some(slot) = map.get_mut(field.name) {
                let plain = slot.take();
                *slot = PiiValue {
                    v: FORMAT_VERSION,
                    s: field.subject,
                    k: None,
                    f: format!("{scope}.{}", field.name),
                    n: None,
                    c: None,
                    p: Some(plain),
                    r: field.redacted,
                }
                .to_json();
            }
        }
    }
    serde_json::to_vec(&json)
}

/// The JSON of a replacement value (`Null` if it does not serialize).
pub fn redacted_json<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Support for generated code: tells at compile time whether a type implements
/// [`PiiFields`] (autoref specialization), so `#[aggregate]` can seal any state that does.
#[doc(hidden)]
pub mod probe {
    use super::{PiiField, PiiFields};

    /// Wraps the value asked about.
    pub struct Probe<'a, T>(pub &'a T);

    /// Chosen when `T: PiiFields`.
    pub trait ViaPii {
        /// The fields.
        fn pii_fields_of(&self) -> Vec<PiiField>;
    }

    impl<T: PiiFields> ViaPii for &Probe<'_, T> {
        fn pii_fields_of(&self) -> Vec<PiiField> {
            self.0.pii_fields()
        }
    }

    /// Chosen otherwise: no fields.
    pub trait ViaNone {
        /// No fields.
        fn pii_fields_of(&self) -> Vec<PiiField>;
    }

    impl<T> ViaNone for Probe<'_, T> {
        fn pii_fields_of(&self) -> Vec<PiiField> {
            Vec::new()
        }
    }
}
