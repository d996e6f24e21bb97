//! The envelope: what an event carries besides its payload (ids, tags, metadata), written once
//! and embedded in [`NewEvent`](crate::store::NewEvent), [`RecordedEvent`](crate::store::RecordedEvent), [`Recorded`](crate::event::Recorded) and
//! [`DispatchOptions`](crate::kernel::DispatchOptions).
//!
//! The two types that read events ([`RecordedEvent`](crate::store::RecordedEvent) and `Recorded<E>`) dereference to their
//! [`Envelope`], so `event.metadata["ip"]`, `event.tags()` and `event.command_id()` read the
//! same fields on both. The two that build one ([`NewEvent`](crate::store::NewEvent) and `DispatchOptions`) have the
//! same builders (`.command_id(..)`, `.correlation_id(..)`, `.causation_id(..)`, `.tag(..)`,
//! `.metadata(..)`, `.try_metadata(..)`, `.envelope(..)`), each delegating to [`Envelope`]'s
//! setters; what they hold is read in their `envelope` field.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// Metadata attached to an event: any JSON value under a string key (user, ip, attempt, ...).
///
/// The envelope's ids and tags have their own fields ([`Envelope::command_id`] and friends);
/// metadata is for everything else.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// An event's envelope: the ids that tie it to the command and the workflow that caused it,
/// its tags and its metadata.
///
/// ```
/// use es_core::store::Envelope;
///
/// let mut envelope = Envelope::default();
/// envelope.set_command_id("cmd-7");
/// envelope.add_tag("vip");
/// envelope.insert_metadata("ip", "10.0.0.1");
/// assert_eq!(envelope.command_id(), Some("cmd-7"));
/// assert_eq!(envelope.correlation_id(), None);
/// assert_eq!(envelope.tags(), ["vip".to_string()]);
/// assert_eq!(envelope.metadata["ip"], "10.0.0.1");
/// assert!(envelope.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The id of the command that produced the event (the idempotency key).
    #[serde(default)]
    pub command_id: Option<Arc<str>>,
    /// The id shared by everything one request caused, across aggregates.
    #[serde(default)]
    pub correlation_id: Option<Arc<str>>,
    /// The id of the message (command or event) that directly caused the event.
    #[serde(default)]
    pub causation_id: Option<Arc<str>>,
    /// Tags for routing and filtering, in the order given.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Metadata stored with the event.
    #[serde(default)]
    pub metadata: Metadata,
}

impl Envelope {
    /// The longest command, correlation or causation id a store accepts, in bytes.
    pub const MAX_ID_LEN: usize = 256;
    /// The longest tag a store accepts, in bytes.
    pub const MAX_TAG_LEN: usize = 128;

    /// The id of the command that produced the event, if it was recorded.
    pub fn command_id(&self) -> Option<&str> {
        self.command_id.as_deref()
    }

    /// The correlation id, if it was recorded.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The causation id, if it was recorded.
    pub fn causation_id(&self) -> Option<&str> {
        self.causation_id.as_deref()
    }

    /// The tags, in the order they were given.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Sets the command id.
    pub fn set_command_id(&mut self, id: impl Into<Arc<str>>) {
        self.command_id = Some(id.into());
    }

    /// Sets the correlation id.
    pub fn set_correlation_id(&mut self, id: impl Into<Arc<str>>) {
        self.correlation_id = Some(id.into());
    }

    /// Sets the causation id.
    pub fn set_causation_id(&mut self, id: impl Into<Arc<str>>) {
        self.causation_id = Some(id.into());
    }

    /// Adds a tag.
    pub fn add_tag(&mut self, tag: impl Into<String>) {
        self.tags.push(tag.into());
    }

    /// Adds one metadata entry; the value is any JSON value (`"text"`, `3`, `json!({..})`).
    pub fn insert_metadata(&mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Adds one metadata entry from any serializable value.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the key when the value does not serialize to JSON;
    /// the envelope is left as it was.
    pub fn try_insert_metadata(
        &mut self,
        key: impl Into<String>,
        value: &impl Serialize,
    ) -> Result<(), StoreError> {
        let key = key.into();
        match serde_json::to_value(value) {
            Ok(value) => {
                self.metadata.insert(key, value);
                Ok(())
            }
            Err(e) => Err(StoreError::InvalidInput(format!(
                "the metadata entry {key:?} does not serialize to JSON: {e}"
            ))),
        }
    }
}

/// The envelope's builders on a type that holds an [`Envelope`] in a field named `envelope`:
/// one set of methods, each delegating to the envelope's setter.
macro_rules! envelope_builders {
    ($ty:ty) => {
        impl $ty {
            /// Sets the command id (the idempotency key).
            #[must_use]
            pub fn command_id(mut self, id: impl Into<::std::sync::Arc<str>>) -> Self {
                self.envelope.set_command_id(id);
                self
            }

            /// Sets the correlation id: shared by everything one request caused.
            #[must_use]
            pub fn correlation_id(mut self, id: impl Into<::std::sync::Arc<str>>) -> Self {
                self.envelope.set_correlation_id(id);
                self
            }

            /// Sets the causation id: the message that directly caused this one.
            #[must_use]
            pub fn causation_id(mut self, id: impl Into<::std::sync::Arc<str>>) -> Self {
                self.envelope.set_causation_id(id);
                self
            }

            /// Adds a tag (repeatable).
            #[must_use]
            pub fn tag(mut self, tag: impl Into<String>) -> Self {
                self.envelope.add_tag(tag);
                self
            }

            /// Adds one metadata entry; the value is any JSON value (`"text"`, `3`,
            /// `json!({..})`).
            #[must_use]
            pub fn metadata(
                mut self,
                key: impl Into<String>,
                value: impl Into<::serde_json::Value>,
            ) -> Self {
                self.envelope.insert_metadata(key, value);
                self
            }

            /// Adds one metadata entry from any serializable value.
            ///
            /// # Errors
            ///
            /// [`StoreError::InvalidInput`](crate::store::StoreError::InvalidInput) naming the
            /// key when the value does not serialize to JSON.
            pub fn try_metadata(
                mut self,
                key: impl Into<String>,
                value: &impl ::serde::Serialize,
            ) -> Result<Self, crate::store::StoreError> {
                self.envelope.try_insert_metadata(key, value)?;
                Ok(self)
            }

            /// Replaces the whole envelope.
            #[must_use]
            pub fn envelope(mut self, envelope: crate::store::Envelope) -> Self {
                self.envelope = envelope;
                self
            }
        }
    };
}
pub(crate) use envelope_builders;

/// `Deref` and `DerefMut` to the [`Envelope`] held in a field named `envelope`, so its
/// accessors and fields read the same on every type that carries one.
macro_rules! envelope_deref {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> ::std::ops::Deref for $ty {
            type Target = crate::store::Envelope;
            fn deref(&self) -> &crate::store::Envelope {
                &self.envelope
            }
        }

        impl<$($generics)*> ::std::ops::DerefMut for $ty {
            fn deref_mut(&mut self) -> &mut crate::store::Envelope {
                &mut self.envelope
            }
        }
    };
}
pub(crate) use envelope_deref;
