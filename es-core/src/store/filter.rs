//! Filters a log scan applies before decoding, and the page a filtered scan returns.

use super::record::RecordedEvent;

/// A page of the global log read through a filter ([`EventStore::read_all_filtered`](crate::store::EventStore::read_all_filtered)).
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
/// payload is decoded): [`EventStore::read_all_matching`](crate::store::EventStore::read_all_matching).
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
