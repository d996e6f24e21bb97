//! Store contracts: the records every backend keeps and the async traits it implements.
//!
//! A backend implements [`EventStore`] (the append-only log), [`SnapshotStore`] (aggregate
//! snapshots) and [`CheckpointStore`] (projection positions and states). Every backend proves it
//! honours these contracts by running the conformance suite of `es_core::testkit`.
//!
//! Ranges are inclusive at their start: [`EventStore::read_stream`] returns events whose sequence
//! is `>= from_sequence`, and [`EventStore::read_all`] returns events whose position is
//! `>= from_position`. Sequences and positions start at 1, so reading from 0 or 1 reads
//! everything.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Metadata attached to an event: any JSON value under a string key (user, ip, attempt, ...).
///
/// The envelope's ids and tags have their own fields ([`NewEvent::command_id`] and friends);
/// metadata is for everything else.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// Identifies one stream of events: the events of one aggregate instance.
///
/// # Which ids are valid
///
/// One rule holds on every store, checked before anything is written (and on reads, so a
/// request for an id no store could hold is an error rather than an empty answer):
///
/// - neither part is empty;
/// - `aggregate_type` is at most [`StreamId::MAX_TYPE_LEN`] bytes (128) and `aggregate_id` at
///   most [`StreamId::MAX_ID_LEN`] bytes (256) of UTF-8, sizes every backend can index (LMDB's
///   keys are limited to 511 bytes);
/// - neither part contains a NUL character (PostgreSQL's text cannot hold one).
///
/// Anything else (spaces, `/`, any Unicode) is allowed. A store answers an invalid id with
/// [`StoreError::InvalidInput`], whose message quotes at most the first 80 bytes of the part
/// at fault.
///
/// ```
/// use es_core::store::{StoreError, StreamId};
///
/// assert!(StreamId::new("bank_account", "acc-1").validate().is_ok());
/// assert!(matches!(StreamId::new("bank_account", "").validate(), Err(StoreError::InvalidInput(_))));
/// let long = "x".repeat(StreamId::MAX_ID_LEN + 1);
/// assert!(StreamId::new("bank_account", long).validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The aggregate type, e.g. `"bank_account"` (`Aggregate::TYPE`).
    pub aggregate_type: String,
    /// The aggregate instance id, e.g. `"acc-1"`.
    pub aggregate_id: String,
}

impl StreamId {
    /// A stream id from an aggregate type and an aggregate id.
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl StreamId {
    /// The longest valid `aggregate_type`, in bytes.
    pub const MAX_TYPE_LEN: usize = 128;
    /// The longest valid `aggregate_id`, in bytes.
    pub const MAX_ID_LEN: usize = 256;

    /// Checks the id against the rule every store applies (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the part at fault and quoting at most its first 80
    /// bytes.
    #[inline]
    pub fn validate(&self) -> Result<(), StoreError> {
        check_id_part("aggregate type", &self.aggregate_type, Self::MAX_TYPE_LEN)?;
        check_id_part("aggregate id", &self.aggregate_id, Self::MAX_ID_LEN)
    }
}

/// Checks one part of a stream id: not empty, not longer than `max` bytes, no NUL.
///
/// Inlined, with the error built out of line: the store checks every append's stream id, and
/// the valid case is a length test and one scan.
#[inline]
fn check_id_part(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if text_ok(value, max) {
        Ok(())
    } else {
        Err(text_error("invalid stream id: the", what, value, max))
    }
}

/// Whether `value` is a valid id or tag: not empty, at most `max` bytes, no NUL.
#[inline]
fn text_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !has_nul(value)
}

/// The error for `value`, which [`text_ok`] refused: `{context} {what} is empty` (or too
/// long, or holds a NUL character).
#[cold]
#[inline(never)]
fn text_error(context: &str, what: &str, value: &str, max: usize) -> StoreError {
    StoreError::InvalidInput(if value.is_empty() {
        format!("{context} {what} is empty")
    } else if value.len() > max {
        format!(
            "{context} {what} is {} bytes, at most {max} are allowed ({})",
            value.len(),
            quote_prefix(value)
        )
    } else {
        format!(
            "{context} {what} contains a NUL character ({})",
            quote_prefix(value)
        )
    })
}

/// Whether `value` holds a NUL byte. Ids and tags are checked on every append, and they are
/// short: a branch-free pass over all bytes beats a search that stops early.
fn has_nul(value: &str) -> bool {
    value.bytes().fold(false, |found, b| found | (b == 0))
}

/// `value` quoted for an error message: whole when short, else its first 80 bytes (cut at a
/// character boundary) and how many bytes were left out.
pub fn quote_prefix(value: &str) -> String {
    const SHOWN: usize = 80;
    if value.len() <= SHOWN {
        return format!("{value:?}");
    }
    let mut end = SHOWN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} more bytes)", &value[..end], value.len() - end)
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// The version a writer expects a stream to be at when it appends (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must be empty (version 0).
    NoStream,
    /// The stream must be exactly at this version (0 means empty, like [`ExpectedVersion::NoStream`]).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at version `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }

    /// `Ok(())` when a stream at version `actual` satisfies this expectation, else
    /// [`StoreError::Conflict`]. Backends call this inside their write transaction.
    pub fn check(self, actual: u64) -> Result<(), StoreError> {
        if self.matches(actual) {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                expected: self,
                actual,
            })
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream (version 0)"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append: its type name, schema version, envelope and serialized payload.
///
/// The envelope (command, correlation and causation ids, tags, metadata, timestamp) is kept by
/// every store exactly as given. The kernel fills it from [`DispatchOptions`]; code that
/// appends directly sets what it needs:
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use es_core::store::NewEvent;
///
/// let at = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
/// let event = NewEvent::new("bank.deposited", br#"{"amount":5}"#.to_vec())
///     .command_id("cmd-7")
///     .correlation_id("order-42")
///     .causation_id("evt-3")
///     .tag("vip")
///     .metadata("ip", "10.0.0.1")
///     .metadata("attempt", 3)
///     .timestamp(at);
/// assert_eq!(event.tags, ["vip"]);
/// assert_eq!(event.metadata["attempt"], serde_json::json!(3));
/// assert!(event.validate().is_ok());
/// ```
///
/// [`DispatchOptions`]: crate::kernel::DispatchOptions
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's type name (`Event::NAME`), e.g. `"Deposited"`.
    pub event_type: String,
    /// The event's schema version (`Event::VERSION`), 1 by default.
    pub event_version: u32,
    /// The id of the command that produced the event (the idempotency key).
    pub command_id: Option<Arc<str>>,
    /// The id shared by everything one request caused, across aggregates.
    pub correlation_id: Option<Arc<str>>,
    /// The id of the message (command or event) that directly caused this event.
    pub causation_id: Option<Arc<str>>,
    /// Tags for routing and filtering, in the order given.
    pub tags: Vec<String>,
    /// Metadata stored with the event.
    pub metadata: Metadata,
    /// When the event happened; `None` lets the store stamp it with its own time.
    pub timestamp: Option<DateTime<Utc>>,
    /// The serialized event (JSON for events produced by the macros).
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// The longest command, correlation or causation id a store accepts, in bytes.
    pub const MAX_ID_LEN: usize = 256;
    /// The longest tag a store accepts, in bytes.
    pub const MAX_TAG_LEN: usize = 128;

    /// A new event of schema version 1 with an empty envelope.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            event_type: event_type.into(),
            event_version: 1,
            command_id: None,
            correlation_id: None,
            causation_id: None,
            tags: Vec::new(),
            metadata: Metadata::new(),
            timestamp: None,
            payload: payload.into(),
        }
    }

    /// Sets the schema version.
    #[must_use]
    pub fn version(mut self, version: u32) -> Self {
        self.event_version = version;
        self
    }

    /// Adds one metadata entry; the value is any JSON value (`"text"`, `3`, `json!({..})`).
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the command id.
    #[must_use]
    pub fn command_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.command_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn causation_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the timestamp the store keeps verbatim (instead of its own time).
    #[must_use]
    pub fn timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Checks the envelope against the rule every store applies before writing anything: ids
    /// and tags are not empty, hold no NUL character, and are at most [`NewEvent::MAX_ID_LEN`]
    /// (ids) or [`NewEvent::MAX_TAG_LEN`] (tags) bytes; metadata strings hold no NUL character
    /// (PostgreSQL's `jsonb` cannot keep one).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the field at fault.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.validate_after(None)
    }

    /// [`NewEvent::validate`], skipping the ids that are the very same allocation as ids
    /// already checked (the kernel shares one id between the fields and the events of a
    /// command).
    fn validate_after(&self, checked: Option<&NewEvent>) -> Result<(), StoreError> {
        self.envelope()
            .validate_after(checked.map(NewEvent::envelope))
    }

    /// The envelope's parts, borrowed.
    fn envelope(&self) -> EnvelopeRef<'_> {
        EnvelopeRef {
            command_id: &self.command_id,
            correlation_id: &self.correlation_id,
            causation_id: &self.causation_id,
            tags: &self.tags,
            metadata: &self.metadata,
        }
    }

    /// Turns this event into the record a store keeps, once the store has assigned its place.
    /// `store_time` is used only when the event carries no timestamp of its own.
    pub fn record(
        self,
        stream: StreamId,
        sequence: u64,
        position: u64,
        store_time: DateTime<Utc>,
    ) -> RecordedEvent {
        RecordedEvent {
            position,
            stream,
            sequence,
            event_type: self.event_type,
            event_version: self.event_version,
            timestamp: self.timestamp.unwrap_or(store_time),
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            tags: self.tags,
            metadata: self.metadata,
            payload: self.payload,
        }
    }
}

/// An envelope's parts, borrowed: what [`NewEvent::validate`] and the kernel's check of
/// `DispatchOptions` (before anything runs) both validate, with one rule.
#[derive(Clone, Copy)]
pub(crate) struct EnvelopeRef<'a> {
    pub(crate) command_id: &'a Option<Arc<str>>,
    pub(crate) correlation_id: &'a Option<Arc<str>>,
    pub(crate) causation_id: &'a Option<Arc<str>>,
    pub(crate) tags: &'a [String],
    pub(crate) metadata: &'a Metadata,
}

impl EnvelopeRef<'_> {
    /// Validates the envelope, skipping ids that are the very same allocation as ids of
    /// `checked`, an envelope already validated.
    pub(crate) fn validate_after(self, checked: Option<EnvelopeRef<'_>>) -> Result<(), StoreError> {
        let same = |a: &Option<Arc<str>>, b: Option<&Option<Arc<str>>>| match (a, b) {
            (Some(a), Some(Some(b))) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let command = self.command_id;
        if let Some(id) = command
            && !same(command, checked.map(|c| c.command_id))
        {
            check_envelope_text("command id", id, NewEvent::MAX_ID_LEN)?;
        }
        for (what, id) in [
            ("correlation id", self.correlation_id),
            ("causation id", self.causation_id),
        ] {
            if let Some(text) = id
                && !same(id, Some(command))
                && !same(id, checked.map(|c| c.correlation_id))
                && !same(id, checked.map(|c| c.causation_id))
            {
                check_envelope_text(what, text, NewEvent::MAX_ID_LEN)?;
            }
        }
        for tag in self.tags {
            check_envelope_text("tag", tag, NewEvent::MAX_TAG_LEN)?;
        }
        for (key, value) in self.metadata {
            if key.contains('\0') || json_has_nul(value) {
                return Err(StoreError::InvalidInput(format!(
                    "invalid event metadata: the entry {} holds a NUL character",
                    quote_prefix(key)
                )));
            }
        }
        Ok(())
    }
}

/// Checks every event of an append: the stream id, then each event's envelope.
///
/// # Errors
///
/// [`StoreError::InvalidInput`] for the first invalid part.
pub fn validate_append(stream: &StreamId, events: &[NewEvent]) -> Result<(), StoreError> {
    stream.validate()?;
    let mut checked = None;
    for event in events {
        event.validate_after(checked)?;
        checked = Some(event);
    }
    Ok(())
}

/// One append of a batch given to [`EventStore::append_many`]: what
/// [`EventStore::append`] takes, as one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAppend {
    /// The stream to append to.
    pub stream: StreamId,
    /// The version the stream must be at when this append is decided.
    pub expected: ExpectedVersion,
    /// The events to append (none: only the expected version is checked).
    pub events: Vec<NewEvent>,
}

impl BatchAppend {
    /// An append of `events` to `stream`, expecting `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream,
            expected,
            events,
        }
    }
}

/// The answer to [`EventStore::append_many`]: one outcome per append, in batch order.
pub type BatchOutcome = Vec<Result<AppendResult, StoreError>>;

/// Checks every append of a batch ([`validate_append`] on each).
///
/// # Errors
///
/// [`StoreError::InvalidInput`] for the first invalid append, its message prefixed with the
/// append's index in the batch (`append 3 of the batch: ...`).
pub fn validate_batch(batch: &[BatchAppend]) -> Result<(), StoreError> {
    for (i, append) in batch.iter().enumerate() {
        validate_append(&append.stream, &append.events).map_err(|e| match e {
            StoreError::InvalidInput(message) => {
                StoreError::InvalidInput(format!("append {i} of the batch: {message}"))
            }
            other => other,
        })?;
    }
    Ok(())
}

/// One envelope id or tag: not empty, at most `max` bytes, no NUL.
#[inline]
fn check_envelope_text(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if text_ok(value, max) {
        Ok(())
    } else {
        Err(text_error("invalid event envelope: a", what, value, max))
    }
}

/// Whether a JSON value holds a NUL character in any string or key.
fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v))
        }
        _ => false,
    }
}

/// An event as stored: its place in the global log and in its stream, its envelope and its
/// content.
///
/// The envelope fields are public; the accessors [`command_id`](Self::command_id),
/// [`correlation_id`](Self::correlation_id), [`causation_id`](Self::causation_id) and
/// [`tags`](Self::tags) read them as borrowed values.
///
/// ```
/// use chrono::Utc;
/// use es_core::store::{NewEvent, StreamId};
///
/// let stored = NewEvent::new("bank.deposited", b"{}".to_vec())
///     .command_id("cmd-7")
///     .tag("vip")
///     .record(StreamId::new("bank_account", "acc-1"), 1, 1, Utc::now());
/// assert_eq!(stored.command_id(), Some("cmd-7"));
/// assert_eq!(stored.correlation_id(), None);
/// assert_eq!(stored.tags(), ["vip".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position, assigned at commit, strictly increasing in commit order (starts at 1).
    pub position: u64,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// The event's number within its stream: 1 for the first event, gapless.
    pub sequence: u64,
    /// The event's type name.
    pub event_type: String,
    /// The event's schema version.
    pub event_version: u32,
    /// When the event happened: the writer's timestamp (the kernel's clock) or, when it gave
    /// none, the store's time at commit.
    pub timestamp: DateTime<Utc>,
    /// The id of the command that produced the event.
    #[serde(default)]
    pub command_id: Option<Arc<str>>,
    /// The correlation id.
    #[serde(default)]
    pub correlation_id: Option<Arc<str>>,
    /// The causation id.
    #[serde(default)]
    pub causation_id: Option<Arc<str>>,
    /// The event's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Metadata stored with the event.
    pub metadata: Metadata,
    /// The serialized event.
    pub payload: Vec<u8>,
}

impl RecordedEvent {
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

    /// The event's tags, in the order they were given.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append (unchanged when no events were given).
    pub version: u64,
    /// The events as recorded, with their sequences and positions, in append order.
    pub events: Vec<RecordedEvent>,
}

impl AppendResult {
    /// The answer to an append that wrote nothing: the stream stays at `version`.
    pub fn unchanged(version: u64) -> Self {
        Self {
            version,
            events: Vec::new(),
        }
    }

    /// The answer to an append of `events` to `stream`, which was at `version_before`, once the
    /// store has given the events their `positions` (in order; `first..` for a gapless log) and
    /// stamped them all with `timestamp`. Every backend builds its answer with this.
    pub fn recorded(
        stream: &StreamId,
        version_before: u64,
        positions: impl IntoIterator<Item = u64>,
        timestamp: DateTime<Utc>,
        events: Vec<NewEvent>,
    ) -> Self {
        let count = events.len() as u64;
        let events = (0u64..)
            .zip(positions)
            .zip(events)
            .map(|((i, position), event)| {
                event.record(stream.clone(), version_before + 1 + i, position, timestamp)
            })
            .collect();
        Self {
            version: version_before + count,
            events,
        }
    }

    /// The position of the first appended event, if any.
    pub fn first_position(&self) -> Option<u64> {
        self.events.first().map(|e| e.position)
    }

    /// The position of the last appended event, if any.
    pub fn last_position(&self) -> Option<u64> {
        self.events.last().map(|e| e.position)
    }
}

/// A page of the global log read through a filter ([`EventStore::read_all_filtered`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilteredPage {
    /// The accepted events, in position order.
    pub events: Vec<RecordedEvent>,
    /// How many events were examined (accepted or not); 0 means the reader is at the head.
    pub scanned: usize,
    /// The position of the last event examined (0 when none was).
    pub scanned_to: u64,
}

/// Which events of the global log a reader wants, decided on the envelope alone (before any
/// payload is decoded): [`EventStore::read_all_matching`].
///
/// An event matches when its type passes `event_type`, its stream is of `aggregate_type` (when
/// given), and `envelope` (when given) accepts the whole event. Stores check the first two on
/// their index or record header; `envelope` sees the event as recorded (payload included, but
/// not decoded).
///
/// ```
/// use chrono::Utc;
/// use es_core::store::{EventFilter, NewEvent, RecordedEvent, StreamId};
///
/// fn deposits(event_type: &str) -> bool {
///     event_type == "Deposited"
/// }
/// fn vip(event: &RecordedEvent) -> bool {
///     event.tags().iter().any(|t| t == "vip")
/// }
/// let filter = EventFilter::types(deposits)
///     .aggregate_type("bank_account")
///     .envelope(vip);
/// let event = NewEvent::new("Deposited", b"{}".to_vec())
///     .tag("vip")
///     .record(StreamId::new("bank_account", "acc-1"), 1, 1, Utc::now());
/// assert!(filter.matches(&event));
/// let other = NewEvent::new("Deposited", b"{}".to_vec())
///     .tag("vip")
///     .record(StreamId::new("wallet", "w-1"), 1, 2, Utc::now());
/// assert!(!filter.matches(&other));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EventFilter {
    /// The event types wanted.
    pub event_type: for<'t> fn(&'t str) -> bool,
    /// Only events of streams of this aggregate type, when given.
    pub aggregate_type: Option<&'static str>,
    /// A check of the whole event (stream, type, tags, metadata), run last, when given.
    pub envelope: Option<fn(&RecordedEvent) -> bool>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        fn any(_: &str) -> bool {
            true
        }
        Self::types(any)
    }

    /// The events whose type `event_type` accepts, of any stream.
    pub fn types(event_type: for<'t> fn(&'t str) -> bool) -> Self {
        Self {
            event_type,
            aggregate_type: None,
            envelope: None,
        }
    }

    /// Keeps only events of streams of `aggregate_type`.
    #[must_use]
    pub fn aggregate_type(mut self, aggregate_type: &'static str) -> Self {
        self.aggregate_type = Some(aggregate_type);
        self
    }

    /// Keeps only events `envelope` accepts.
    #[must_use]
    pub fn envelope(mut self, envelope: fn(&RecordedEvent) -> bool) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Whether the event's type and aggregate type pass (what a store can tell from its
    /// index, before reading the rest of the event).
    pub fn matches_head(&self, aggregate_type: &str, event_type: &str) -> bool {
        self.aggregate_type
            .is_none_or(|wanted| wanted == aggregate_type)
            && (self.event_type)(event_type)
    }

    /// Whether the event matches the whole filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.matches_head(&event.stream.aggregate_type, &event.event_type)
            && self.envelope.is_none_or(|f| f(event))
    }
}

/// A serialized aggregate state at a stream version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream the snapshot summarizes.
    pub stream: StreamId,
    /// The stream version the state includes (the last applied sequence).
    pub version: u64,
    /// The serialized state (JSON for aggregates run by the kernel).
    pub state: Vec<u8>,
    /// When the snapshot was taken.
    pub timestamp: DateTime<Utc>,
}

impl Snapshot {
    /// A snapshot taken now.
    pub fn new(stream: StreamId, version: u64, state: impl Into<Vec<u8>>) -> Self {
        Self {
            stream,
            version,
            state: state.into(),
            timestamp: Utc::now(),
        }
    }
}

/// A projection's saved progress: the last position it processed and, optionally, its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last global position the projection has processed (0: none).
    pub position: u64,
    /// The projection's serialized state saved together with the position, if any.
    pub state: Option<Vec<u8>>,
}

/// Errors of the store layer.
///
/// `StoreError` is `Clone` so that one failed group commit can be reported to every request of
/// the group.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version. Nothing was written.
    #[error("wrong expected version: expected {expected}, stream is at version {actual}")]
    Conflict {
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The store cannot be reached right now (lost connection, pool exhausted, timeout). The
    /// operation did not take effect; it is safe to retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The outcome of a write is unknown (e.g. the connection dropped during commit). The caller
    /// must not assume it committed, nor that it did not.
    #[error("outcome of the write is unknown: {0}")]
    Indeterminate(String),
    /// An I/O error.
    #[error("I/O error: {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Stored data cannot be read back (corrupt file, bad record).
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// A stored event is intact but this code cannot decode it: an unknown event name, a
    /// version newer than the code, an upcaster's error or a payload that no longer
    /// deserializes. Deploying code that reads it fixes it; nothing needs repairing.
    #[error("event {sequence} of stream {stream} cannot be decoded: {source}")]
    Decode {
        /// The event's stream.
        stream: StreamId,
        /// The event's sequence in its stream.
        sequence: u64,
        /// What the decoder reported (naming the event, its stored version and the reason).
        #[source]
        source: crate::event::EventError,
    },
    /// The store is full (disk full, LMDB map at its configured maximum).
    #[error("store full: {0}")]
    Full(String),
    /// The location holds something that is not a store this version can open.
    #[error("incompatible store: {0}")]
    Incompatible(String),
    /// Another process or handle holds the store.
    #[error("store locked: {0}")]
    Locked(String),
    /// The request itself is invalid (e.g. an empty stream id).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The store has been closed.
    #[error("store closed")]
    Closed,
    /// Any other backend error.
    #[error("{backend} error: {message}")]
    Backend {
        /// The backend's name (`"lmdb"`, `"postgres"`, ...).
        backend: &'static str,
        /// The backend's message.
        message: String,
    },
}

impl StoreError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// Whether the operation is known not to have taken effect and may simply be retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The append-only event log.
///
/// All methods are safe to call concurrently. Implementations must make `append` atomic (all
/// events or none), check the expected version against the stream's committed version, assign
/// gapless sequences per stream and strictly increasing positions in commit order.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at the `expected` version, atomically.
    ///
    /// On a version mismatch returns [`StoreError::Conflict`] and writes nothing. Appending no
    /// events checks the expected version and returns the current version.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends a batch of appends, in batch order: each is decided as [`EventStore::append`]
    /// would decide it after the ones before it in the batch.
    ///
    /// - **Checked first.** Every append is validated before anything is written (stream ids,
    ///   envelopes: [`validate_batch`], and the store's own limits); an invalid one fails the
    ///   whole call with [`StoreError::InvalidInput`] naming its index, and nothing is written.
    /// - **Each append on its own.** Each append is atomic, as with `append`. One whose expected
    ///   version does not match gets `Err(StoreError::Conflict)` in its slot of the answer and
    ///   writes nothing; the appends after it are still decided (one expecting the version a
    ///   failed append would have left then conflicts too). Several appends may name the same
    ///   stream: each sees the ones before it.
    /// - **Order.** The events are given positions in batch order: every event of an append
    ///   comes after every event of the appends before it in the batch, and sequences follow on
    ///   from the stream's version as for `append`.
    /// - **The answer** (`Ok`) holds one outcome per append, in batch order. An `Err` of the
    ///   whole call (closed store, I/O failure, unreachable server) means the batch did not
    ///   complete: with this default implementation, which calls `append` once per append in
    ///   order, the appends before the failing one stay written and the rest were not tried;
    ///   the file, LMDB and PostgreSQL stores write the batch in one transaction (PostgreSQL:
    ///   one per run of appends it can decide in one statement), which then wrote nothing.
    ///
    /// Backends override it to write the whole batch with one commit (one flush) instead of
    /// one per append; other writers' appends may still commit between two appends of a batch
    /// with this default implementation.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::store::{BatchAppend, StoreError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StoreError> {
    /// let store = MemoryStore::new();
    /// let (a, b) = (StreamId::new("counter", "a"), StreamId::new("counter", "b"));
    /// let tick = || NewEvent::new("Ticked", b"{}".to_vec());
    /// let outcomes = store
    ///     .append_many(vec![
    ///         BatchAppend::new(a.clone(), ExpectedVersion::NoStream, vec![tick()]),
    ///         BatchAppend::new(b.clone(), ExpectedVersion::Exact(5), vec![tick()]),
    ///         BatchAppend::new(a.clone(), ExpectedVersion::Exact(1), vec![tick(), tick()]),
    ///     ])
    ///     .await?;
    /// assert_eq!(outcomes[0].as_ref().map(|r| r.version).ok(), Some(1));
    /// assert!(matches!(outcomes[1], Err(StoreError::Conflict { actual: 0, .. })));
    /// assert_eq!(outcomes[2].as_ref().map(|r| r.version).ok(), Some(3));
    /// assert_eq!(store.head_position().await?, 3);
    /// # Ok(())
    /// # }
    /// ```
    async fn append_many(&self, batch: Vec<BatchAppend>) -> Result<BatchOutcome, StoreError> {
        validate_batch(&batch)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for append in batch {
            match self
                .append(&append.stream, append.expected, append.events)
                .await
            {
                Ok(done) => outcomes.push(Ok(done)),
                Err(conflict @ StoreError::Conflict { .. }) => outcomes.push(Err(conflict)),
                Err(other) => return Err(other),
            }
        }
        Ok(outcomes)
    }

    /// Up to `limit` events of `stream` with sequence `>= from_sequence`, in sequence order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the global log with position `>= from_position`, in position
    /// order. A reader never skips an event that becomes visible later with a lower position.
    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Like [`EventStore::read_all`], but returns only the events whose type `accept` takes.
    ///
    /// Up to `limit` events are *examined*; [`FilteredPage::scanned_to`] tells how far, so a
    /// reader advances past skipped events too. Backends override this to skip the events they
    /// do not return without copying their payloads; the default filters `read_all`.
    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        let page = self.read_all(from_position, limit).await?;
        let scanned = page.len();
        let scanned_to = page.last().map_or(0, |e| e.position);
        Ok(FilteredPage {
            events: page.into_iter().filter(|e| accept(&e.event_type)).collect(),
            scanned,
            scanned_to,
        })
    }

    /// Like [`EventStore::read_all_filtered`], with a filter over the envelope: the event type,
    /// the stream's aggregate type and, last, a function of the whole event.
    ///
    /// Up to `limit` events are *examined*, as for `read_all_filtered`. Backends override this
    /// to decide on the type and aggregate type without decoding (or copying) the payloads of
    /// the events they do not return; the default filters `read_all_filtered`.
    async fn read_all_matching(
        &self,
        from_position: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let mut page = self
            .read_all_filtered(from_position, limit, filter.event_type)
            .await?;
        page.events.retain(|e| filter.matches(e));
        Ok(page)
    }

    /// The stream's version: its last sequence, 0 when it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// The highest position a reader may read (0 for an empty store).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// A receiver whose value is the highest readable position; it changes after each commit.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// Aggregate snapshots, so that rehydration replays only the events after the latest one.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Saves a snapshot (replacing one at the same stream and version).
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError>;
    /// The snapshot with the highest version for `stream`, if any.
    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;
    /// Deletes all but the `keep_last` most recent snapshots of `stream`.
    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError>;
}

/// The answer to [`CheckpointStore::try_lease`].
pub enum Lease {
    /// The store is not shared between processes (or does not elect runners): run.
    NotNeeded,
    /// Another process runs this runner: stand by and ask again.
    HeldElsewhere,
    /// This process may run it while the lease lasts.
    Acquired(RunnerLease),
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lease::NotNeeded => "NotNeeded",
            Lease::HeldElsewhere => "HeldElsewhere",
            Lease::Acquired(_) => "Acquired",
        })
    }
}

/// The exclusive right to run one named runner among the processes sharing a store (on
/// PostgreSQL, an advisory lock held by a dedicated connection). Dropping it releases the right;
/// a process that dies releases it with its connection.
pub struct RunnerLease {
    lost: watch::Receiver<bool>,
    _holder: Box<dyn Send + Sync>,
}

impl RunnerLease {
    /// A lease kept by `holder` (dropped to release it); `lost` turns `true` when the store
    /// can no longer vouch for it (the connection that holds it failed).
    pub fn new(lost: watch::Receiver<bool>, holder: impl Send + Sync + 'static) -> Self {
        Self {
            lost,
            _holder: Box::new(holder),
        }
    }

    /// Whether the lease was lost: the runner must stop running (another process may have
    /// taken over).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

/// Projection checkpoints: the last processed position, with the projection's state when it is
/// persisted. Saving the position and the state is one atomic write.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The saved checkpoint of projection `name`, if any.
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError>;
    /// Saves projection `name`'s position and (optional) state atomically.
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError>;

    /// Tries to become the one process that runs the runner `name` among every process sharing
    /// this store. The default, for stores one process owns, is [`Lease::NotNeeded`].
    async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
        let _ = name;
        Ok(Lease::NotNeeded)
    }
}

macro_rules! forward_event_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: EventStore + ?Sized> EventStore for $ty {
            async fn append(
                &self,
                stream: &StreamId,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> Result<AppendResult, StoreError> {
                (**self).append(stream, expected, events).await
            }
            async fn append_many(
                &self,
                batch: Vec<BatchAppend>,
            ) -> Result<BatchOutcome, StoreError> {
                (**self).append_many(batch).await
            }
            async fn read_stream(
                &self,
                stream: &StreamId,
                from_sequence: u64,
                limit: usize,
            ) -> Result<Vec<RecordedEvent>, StoreError> {
                (**self).read_stream(stream, from_sequence, limit).await
            }
            async fn read_all(
                &self,
                from_position: u64,
                limit: usize,
            ) -> Result<Vec<RecordedEvent>, StoreError> {
                (**self).read_all(from_position, limit).await
            }
            async fn read_all_filtered(
                &self,
                from_position: u64,
                limit: usize,
                accept: for<'t> fn(&'t str) -> bool,
            ) -> Result<FilteredPage, StoreError> {
                (**self)
                    .read_all_filtered(from_position, limit, accept)
                    .await
            }
            async fn read_all_matching(
                &self,
                from_position: u64,
                limit: usize,
                filter: EventFilter,
            ) -> Result<FilteredPage, StoreError> {
                (**self)
                    .read_all_matching(from_position, limit, filter)
                    .await
            }
            async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
                (**self).stream_version(stream).await
            }
            async fn head_position(&self) -> Result<u64, StoreError> {
                (**self).head_position().await
            }
            fn subscribe(&self) -> watch::Receiver<u64> {
                (**self).subscribe()
            }
        }

        #[async_trait]
        impl<T: SnapshotStore + ?Sized> SnapshotStore for $ty {
            async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
                (**self).save(snapshot).await
            }
            async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
                (**self).load_latest(stream).await
            }
            async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
                (**self).prune(stream, keep_last).await
            }
        }

        #[async_trait]
        impl<T: CheckpointStore + ?Sized> CheckpointStore for $ty {
            async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
                (**self).load(name).await
            }
            async fn save(
                &self,
                name: &str,
                position: u64,
                state: Option<Vec<u8>>,
            ) -> Result<(), StoreError> {
                (**self).save(name, position, state).await
            }
            async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
                (**self).try_lease(name).await
            }
        }
    };
}

forward_event_store!(Arc<T>);
forward_event_store!(Box<T>);

/// The page size [`fold_all`] and [`fold_stream`] read in.
pub const FOLD_PAGE: usize = 1024;

/// The first and last value (inclusive) of `range`, or `None` when it is empty. Values start at
/// 1, so a range starting at 0 starts at 1.
fn inclusive_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let first = match range.start_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.checked_add(1)?,
        Bound::Unbounded => 1,
    }
    .max(1);
    let last = match range.end_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}

/// Folds the events of one stream whose sequence lies in `range` (`2..4`, `5..`, `..=9`, `..`),
/// in sequence order, reading page by page (the original Erlang project's `fold/4`).
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{StoreError, fold_stream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let events = (0..10).map(|_| NewEvent::new("Ticked", b"{}".to_vec())).collect();
/// store.append(&stream, ExpectedVersion::Any, events).await?;
/// let seqs = fold_stream(&store, &stream, 3..=5, Vec::new(), |mut v, e| {
///     v.push(e.sequence);
///     v
/// })
/// .await?;
/// assert_eq!(seqs, [3, 4, 5]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The store's error, for the first page that fails.
pub async fn fold_stream<S, Acc, F>(
    store: &S,
    stream: &StreamId,
    range: impl RangeBounds<u64>,
    mut acc: Acc,
    mut f: F,
) -> Result<Acc, StoreError>
where
    S: EventStore + ?Sized,
    F: FnMut(Acc, RecordedEvent) -> Acc,
{
    let Some((mut next, last)) = inclusive_bounds(&range) else {
        return Ok(acc);
    };
    loop {
        let wanted = usize::try_from(last - next).map_or(FOLD_PAGE, |n| n.saturating_add(1));
        let limit = wanted.min(FOLD_PAGE);
        let page = store.read_stream(stream, next, limit).await?;
        let done = page.len() < limit;
        for event in page {
            if event.sequence > last {
                return Ok(acc);
            }
            next = event.sequence.saturating_add(1);
            acc = f(acc, event);
        }
        if done || next > last || next == u64::MAX {
            return Ok(acc);
        }
    }
}

/// Folds the events of the global log whose position lies in `range` (`2..4`, `5..`, `..=9`,
/// `..`), in position order, reading page by page (the original Erlang project's `fold_all/3`).
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{StoreError, fold_all};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let events = (0..10).map(|_| NewEvent::new("Ticked", b"{}".to_vec())).collect();
/// store.append(&stream, ExpectedVersion::Any, events).await?;
/// assert_eq!(fold_all(&store, 5.., 0, |n, _| n + 1).await?, 6);
/// assert_eq!(fold_all(&store, ..3, 0, |n, _| n + 1).await?, 2);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The store's error, for the first page that fails.
pub async fn fold_all<S, Acc, F>(
    store: &S,
    range: impl RangeBounds<u64>,
    mut acc: Acc,
    mut f: F,
) -> Result<Acc, StoreError>
where
    S: EventStore + ?Sized,
    F: FnMut(Acc, RecordedEvent) -> Acc,
{
    let Some((mut next, last)) = inclusive_bounds(&range) else {
        return Ok(acc);
    };
    loop {
        let wanted = usize::try_from(last - next).map_or(FOLD_PAGE, |n| n.saturating_add(1));
        let limit = wanted.min(FOLD_PAGE);
        let page = store.read_all(next, limit).await?;
        if page.is_empty() {
            return Ok(acc);
        }
        for event in page {
            if event.position > last {
                return Ok(acc);
            }
            next = event.position.saturating_add(1);
            acc = f(acc, event);
        }
        if next > last || next == u64::MAX {
            return Ok(acc);
        }
    }
}

/// A backend that is all three stores at once; `Arc<dyn Store>` is a store too, which lets a
/// program choose its backend at run time.
pub trait Store: EventStore + SnapshotStore + CheckpointStore {}

impl<T: EventStore + SnapshotStore + CheckpointStore + ?Sized> Store for T {}
