//! The export format: one JSON object per line, one line per event, in global order.
//!
//! ```text
//! {"stream":{"type":"bank_account","id":"acc-1"},"sequence":1,"position":1,"type":"Deposited","version":1,"timestamp":"2025-01-02T03:04:05.123456789Z","metadata":{},"payload":{"amount":5}}
//! ```
//!
//! | field | meaning |
//! | --- | --- |
//! | `stream` | `{"type": aggregate type, "id": aggregate id}` |
//! | `sequence` | the event's number in its stream (1, 2, ...) |
//! | `position` | its global position in the exported store (import keeps the order, the target assigns its own positions) |
//! | `type`, `version` | the event's type name and schema version |
//! | `timestamp` | RFC 3339, UTC, with as many fraction digits as recorded |
//! | `command_id`, `correlation_id`, `causation_id` | the envelope's ids, absent when none |
//! | `tags` | the envelope's tags, absent when none |
//! | `metadata` | the metadata object |
//! | `payload` | the payload, verbatim, when its bytes are JSON on one line |
//! | `payload_base64` | otherwise the payload's bytes in standard base64 |

use std::borrow::Cow;
use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use es_core::store::{Metadata, NewEvent, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A stream id as written in an export line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamField<'a> {
    #[serde(rename = "type", borrow)]
    aggregate_type: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// An export line as written.
#[derive(Serialize)]
struct LineOut<'a> {
    stream: StreamField<'a>,
    sequence: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    version: u32,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    metadata: &'a Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// An export line as read back.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    #[serde(borrow)]
    stream: StreamField<'a>,
    sequence: u64,
    #[serde(default)]
    position: Option<u64>,
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    timestamp: DateTime<Utc>,
    #[serde(default)]
    command_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    causation_id: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
    #[serde(default)]
    payload_base64: Option<String>,
}

/// The payload as JSON text to embed verbatim, when its bytes are one line of JSON with
/// nothing around it (so reading it back gives the same bytes).
pub(crate) fn payload_as_json(payload: &[u8]) -> Option<&RawValue> {
    if payload.contains(&b'\n') || payload.contains(&b'\r') {
        return None;
    }
    let raw: &RawValue = serde_json::from_slice(payload).ok()?;
    (raw.get().len() == payload.len()).then_some(raw)
}

/// The envelope ids and tags of an event: `(command id, correlation id, causation id, tags)`.
fn envelope(event: &RecordedEvent) -> (Option<&str>, Option<&str>, Option<&str>, &[String]) {
    (
        event.command_id(),
        event.correlation_id(),
        event.causation_id(),
        event.tags(),
    )
}

/// A timestamp as exported: RFC 3339 in UTC, with as many fraction digits as it has.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Appends `event` to `out` as one export line, newline included.
///
/// ```
/// use es_core::store::{NewEvent, StreamId};
///
/// let event = NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())
///     .record(StreamId::new("bank_account", "acc-1"), 1, 1, chrono::DateTime::UNIX_EPOCH);
/// let mut line = Vec::new();
/// es_cli::format::write_line(&mut line, &event)?;
/// let line = String::from_utf8(line)?;
/// assert!(line.ends_with("\"payload\":{\"amount\":5}}\n"));
/// let back = es_cli::format::parse_line(line.trim_end())?;
/// assert_eq!(back.stream, event.stream);
/// assert_eq!(back.event.payload, event.payload);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// What writing to `out` returns (a `Vec` never fails).
pub fn write_line(out: &mut impl Write, event: &RecordedEvent) -> std::io::Result<()> {
    let payload = payload_as_json(&event.payload);
    let payload_base64 = payload.is_none().then(|| BASE64.encode(&event.payload));
    let (command_id, correlation_id, causation_id, tags) = envelope(event);
    let line = LineOut {
        stream: StreamField {
            aggregate_type: Cow::Borrowed(&event.stream.aggregate_type),
            id: Cow::Borrowed(&event.stream.aggregate_id),
        },
        sequence: event.sequence,
        position: event.position,
        event_type: &event.event_type,
        version: event.event_version,
        timestamp: format_timestamp(&event.timestamp),
        command_id,
        correlation_id,
        causation_id,
        tags,
        metadata: &event.metadata,
        payload,
        payload_base64,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// One event read back from an export line.
#[derive(Debug, Clone)]
pub struct ImportedEvent {
    /// Its stream.
    pub stream: StreamId,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Its position in the exported store, when the line has one.
    pub position: Option<u64>,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// The event, ready to append, with its envelope and timestamp.
    pub event: NewEvent,
}

/// Parses one export line (without its newline).
///
/// # Errors
///
/// A message saying what is wrong with the line (bad JSON, a missing or unknown field, a bad
/// stream id, sequence 0, both or neither of `payload` and `payload_base64`, bad base64).
pub fn parse_line(line: &str) -> Result<ImportedEvent, String> {
    let line: LineIn<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let stream = StreamId::new(line.stream.aggregate_type, line.stream.id);
    stream.validate().map_err(|e| e.to_string())?;
    if line.sequence == 0 {
        return Err("sequence 0: sequences start at 1".to_owned());
    }
    if line.position == Some(0) {
        return Err("position 0: positions start at 1".to_owned());
    }
    let payload = match (line.payload, line.payload_base64) {
        (Some(json), None) => json.get().as_bytes().to_vec(),
        (None, Some(b64)) => BASE64
            .decode(b64.as_bytes())
            .map_err(|e| format!("payload_base64 is not valid base64: {e}"))?,
        (Some(_), Some(_)) => {
            return Err("both `payload` and `payload_base64`: keep one".to_owned());
        }
        (None, None) => return Err("no `payload` nor `payload_base64`".to_owned()),
    };
    let mut event = NewEvent::new(line.event_type, payload)
        .version(line.version)
        .timestamp(line.timestamp);
    event.envelope.command_id = line.command_id.map(Into::into);
    event.envelope.correlation_id = line.correlation_id.map(Into::into);
    event.envelope.causation_id = line.causation_id.map(Into::into);
    event.envelope.tags = line.tags;
    event.envelope.metadata = line.metadata;
    Ok(ImportedEvent {
        stream,
        sequence: line.sequence,
        position: line.position,
        timestamp: line.timestamp,
        event,
    })
}

/// The event to append to another store for `event`: the same type, version, envelope,
/// timestamp and payload.
pub fn to_new_event(event: RecordedEvent) -> NewEvent {
    into_parts(event).2
}

/// `event` taken apart, without copying anything: its stream, its sequence and the event to
/// append to another store ([`to_new_event`]).
pub(crate) fn into_parts(event: RecordedEvent) -> (StreamId, u64, NewEvent) {
    let RecordedEvent {
        position: _,
        stream,
        sequence,
        event_type,
        event_version,
        timestamp,
        envelope,
        payload,
    } = event;
    let new = NewEvent::new(event_type, payload)
        .version(event_version)
        .timestamp(timestamp)
        .envelope(envelope);
    (stream, sequence, new)
}
