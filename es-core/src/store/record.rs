//! The records a store keeps: events to append and as recorded, append answers, snapshots and
//! checkpoints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::envelope::{Envelope, envelope_builders, envelope_deref};
use super::error::StoreError;
use super::id::{ExpectedVersion, StreamId};

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
/// assert_eq!(event.envelope.tags, ["vip"]);
/// assert_eq!(event.envelope.metadata["attempt"], serde_json::json!(3));
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
    /// Its envelope: ids, tags and metadata (the fields read through `Deref`).
    #[serde(flatten)]
    pub envelope: Envelope,
    /// When the event happened; `None` lets the store stamp it with its own time.
    pub timestamp: Option<DateTime<Utc>>,
    /// The serialized event (JSON for events produced by the macros).
    pub payload: Vec<u8>,
}

envelope_builders!(NewEvent);

impl NewEvent {
    /// The longest command, correlation or causation id a store accepts, in bytes.
    pub const MAX_ID_LEN: usize = Envelope::MAX_ID_LEN;
    /// The longest tag a store accepts, in bytes.
    pub const MAX_TAG_LEN: usize = Envelope::MAX_TAG_LEN;

    /// A new event of schema version 1 with an empty envelope.
    pub fn new(event_type: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            event_type: event_type.into(),
            event_version: 1,
            envelope: Envelope::default(),
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

    /// Sets the timestamp the store keeps verbatim (instead of its own time).
    #[must_use]
    pub fn timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Checks the envelope ([`Envelope::validate`]): the rule every store applies before
    /// writing anything.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the field at fault.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.envelope.validate()
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
            envelope: self.envelope,
            payload: self.payload,
        }
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
        event.envelope.validate_after(checked)?;
        checked = Some(&event.envelope);
    }
    Ok(())
}

/// One append of a batch given to [`EventStore::append_many`](crate::store::EventStore::append_many): what
/// [`EventStore::append`](crate::store::EventStore::append) takes, as one value.
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

/// The answer to [`EventStore::append_many`](crate::store::EventStore::append_many): one outcome per append, in batch order.
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

/// An event as stored: its place in the global log and in its stream, its envelope and its
/// content.
///
/// The envelope is public in [`envelope`](Self::envelope), and the event dereferences to it:
/// `event.metadata`, [`command_id()`](Envelope::command_id),
/// [`correlation_id()`](Envelope::correlation_id), [`causation_id()`](Envelope::causation_id)
/// and [`tags()`](Envelope::tags) read it as borrowed values.
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
    /// Its envelope: ids, tags and metadata (the fields read through `Deref`).
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The serialized event.
    pub payload: Vec<u8>,
}

envelope_deref!([] RecordedEvent);

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
    /// stamped them all with `timestamp`. Every backend builds its answer with this or
    /// [`recorded_owned`](Self::recorded_owned).
    pub fn recorded(
        stream: &StreamId,
        version_before: u64,
        positions: impl IntoIterator<Item = u64>,
        timestamp: DateTime<Utc>,
        events: Vec<NewEvent>,
    ) -> Self {
        Self::recorded_owned(stream.clone(), version_before, positions, timestamp, events)
    }

    /// [`recorded`](Self::recorded) for a store that owns the stream id (it kept the request's):
    /// the last event takes it instead of a copy, so the answer to an append of one event
    /// copies no id.
    ///
    /// ```
    /// # use es_core::store::{AppendResult, NewEvent, StreamId};
    /// let stream = StreamId::new("bank_account", "acc-1");
    /// let now = chrono::Utc::now();
    /// let events = vec![NewEvent::new("Deposited", b"{}".to_vec()); 2];
    /// let done = AppendResult::recorded_owned(stream.clone(), 4, 10.., now, events);
    /// assert_eq!(done.version, 6);
    /// assert_eq!(done.events[1].sequence, 6);
    /// assert_eq!(done.events[1].position, 11);
    /// assert!(done.events.iter().all(|e| e.stream == stream));
    /// ```
    pub fn recorded_owned(
        mut stream: StreamId,
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
                let stream = if i + 1 == count {
                    std::mem::take(&mut stream)
                } else {
                    stream.clone()
                };
                event.record(stream, version_before + 1 + i, position, timestamp)
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
