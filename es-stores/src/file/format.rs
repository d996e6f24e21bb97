//! The JSON text of event lines, snapshot files and checkpoint files: [`EventLine`],
//! [`SnapshotDoc`] and [`CheckpointDoc`] read them (the store does, and so can a tool that
//! checks a store's files without opening it, like `es verify`).
//!
//! Every record is one JSON object whose last field is its body (an event's payload, a
//! snapshot's or checkpoint's state). A body whose bytes are valid JSON (and hold no newline) is
//! embedded verbatim, byte for byte, under its key (`"payload"`, `"state"`), so `cat` shows it
//! as written and reading returns exactly the bytes that were stored. Any other body is stored
//! as standard base64 under `"<key>_base64"`.
//!
//! An event line:
//!
//! ```text
//! {"position":1,"stream":{"type":"bank_account","id":"acc-1"},"sequence":1,"type":"Deposited","version":1,"timestamp":"2025-01-02T03:04:05.123456789Z","metadata":{},"payload":{"amount":5}}
//! ```
//!
//! and one with a whole envelope (format 2): the ids and tags come after the timestamp, each
//! left out when absent or empty, and metadata values are any JSON:
//!
//! ```text
//! {"position":2,"stream":{"type":"bank_account","id":"acc-1"},"sequence":2,"type":"Deposited","version":1,"timestamp":"2025-01-02T03:04:05.123456789Z","command_id":"cmd-7","correlation_id":"order-42","causation_id":"cmd-7","tags":["vip"],"metadata":{"attempt":3,"ip":"10.0.0.1"},"payload":{"amount":5}}
//! ```
//!
//! Format 1 lines (no ids or tags, string metadata) are format 2 lines too. The directory's
//! format is in its `format` file (see [`layout`](super::layout)).
//!
//! A removed event (`EventStore::truncate_stream`, format 3) keeps its line, overwritten in
//! place by a placeholder padded with spaces to the same length:
//!
//! ```text
//! {"position":1,"stream":{"type":"bank_account","id":"acc-1"},"sequence":1,"type":"Deposited","version":1,"timestamp":"2025-01-02T03:04:05.123456789Z","removed":true}
//! ```
//!
//! The first line of an append of several events carries `"batch_size":n` (before the payload):
//! after a crash, an append whose lines are not all complete is dropped as a whole.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use es_core::store::{Metadata, StreamId};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};

/// How timestamps are written: RFC 3339 in UTC with as many fraction digits as needed, so a
/// timestamp read back equals the one recorded.
pub(super) fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes `t` as [`format_timestamp`] does into `out` (cleared first), without allocating
/// when `out` has room: the common case (years 0 to 9999, no leap second) is formatted here,
/// digit by digit, the others by chrono.
pub(super) fn format_timestamp_into(out: &mut String, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    out.clear();
    let nanos = t.nanosecond();
    let Ok(year) = u32::try_from(t.year()) else {
        out.push_str(&format_timestamp(t));
        return;
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        out.push_str(&format_timestamp(t));
        return;
    }
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, t.month(), 2);
    out.push('-');
    push_digits(out, t.day(), 2);
    out.push('T');
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    // As `SecondsFormat::AutoSi`: no fraction, or 3, 6 or 9 digits, the fewest that are exact.
    if nanos != 0 {
        let (fraction, width) = if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        out.push('.');
        push_digits(out, fraction, width);
    }
    out.push('Z');
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = n / 10u32.pow(i) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Parses a timestamp written by [`format_timestamp`] (any RFC 3339 timestamp is accepted).
pub(super) fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("bad timestamp {s:?}: {e}"))
}

/// A stream id as written: `{"type": ..., "id": ...}`.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamField<'a> {
    /// The aggregate type.
    #[serde(rename = "type", borrow)]
    pub aggregate_type: Cow<'a, str>,
    /// The aggregate id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

impl<'a> StreamField<'a> {
    /// Borrows a stream id.
    pub(super) fn of(stream: &'a StreamId) -> Self {
        Self {
            aggregate_type: Cow::Borrowed(&stream.aggregate_type),
            id: Cow::Borrowed(&stream.aggregate_id),
        }
    }

    /// Whether this is `stream`.
    pub(super) fn is(&self, stream: &StreamId) -> bool {
        self.aggregate_type == stream.aggregate_type && self.id == stream.aggregate_id
    }

    /// The owned stream id.
    pub fn to_stream_id(&self) -> StreamId {
        StreamId::new(self.aggregate_type.as_ref(), self.id.as_ref())
    }
}

/// The fields of an event line before its payload, in the order they are written. The
/// envelope's ids and tags are left out when absent or empty, so a line without them is
/// written exactly as format 1 wrote it.
#[derive(Serialize)]
pub(super) struct EventHeader<'a> {
    pub position: u64,
    pub stream: StreamField<'a>,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub version: u32,
    pub timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub tags: &'a [String],
    pub metadata: &'a Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
}

/// An event line of `events.jsonl` as read back (see the [module docs](self)): the line
/// format, for the store and for tools that read its files without opening it.
#[derive(Deserialize)]
#[non_exhaustive]
pub struct EventLine<'a> {
    /// The event's position in the log: its line number, from 1.
    pub position: u64,
    /// The event's stream.
    #[serde(borrow)]
    pub stream: StreamField<'a>,
    /// The event's sequence in its stream, from 1.
    pub sequence: u64,
    /// The event type (`"type"`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event type's schema version.
    pub version: u32,
    /// When it was recorded, RFC 3339 in UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// The command id, when recorded (format 2).
    #[serde(default)]
    pub command_id: Option<String>,
    /// The correlation id, when recorded (format 2).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The causation id, when recorded (format 2).
    #[serde(default)]
    pub causation_id: Option<String>,
    /// The tags, empty when none (format 2).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The metadata (string values in format 1, any JSON in format 2).
    #[serde(default)]
    pub metadata: Metadata,
    /// On the first line of an append of several events: how many lines the append wrote.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// `Some` when the payload is embedded verbatim as JSON under `"payload"` (even as
    /// `null`, the payload whose bytes are `null`).
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<IgnoredAny>,
    /// The payload as standard base64, when it is not JSON.
    #[serde(default, borrow)]
    pub payload_base64: Option<Cow<'a, str>>,
    /// `true` on the placeholder of a removed event (format 3): it keeps the position,
    /// stream, sequence, type, version and timestamp, and has no metadata, ids or payload.
    #[serde(default)]
    pub removed: bool,
}

impl EventLine<'_> {
    /// The header this line was written with (to locate the verbatim payload).
    pub(super) fn header(&self) -> EventHeader<'_> {
        EventHeader {
            position: self.position,
            stream: StreamField {
                aggregate_type: Cow::Borrowed(&self.stream.aggregate_type),
                id: Cow::Borrowed(&self.stream.id),
            },
            sequence: self.sequence,
            event_type: &self.event_type,
            version: self.version,
            timestamp: &self.timestamp,
            command_id: self.command_id.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            causation_id: self.causation_id.as_deref(),
            tags: &self.tags,
            metadata: &self.metadata,
            batch_size: self.batch_size,
        }
    }
}

/// What the scan on open reads of each line: enough to index it and to know it is whole. The
/// fields it does not keep are still checked to be present and to be valid JSON.
#[derive(Deserialize)]
pub(super) struct ScanLine<'a> {
    pub position: u64,
    #[serde(borrow)]
    pub stream: StreamField<'a>,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub _event_type: IgnoredAny,
    #[serde(rename = "version")]
    pub _version: u32,
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    #[serde(default)]
    pub batch_size: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub payload: Option<IgnoredAny>,
    #[serde(default, borrow)]
    pub payload_base64: Option<Cow<'a, str>>,
    #[serde(default)]
    pub removed: bool,
}

/// The fields of a snapshot file before its state.
#[derive(Serialize)]
pub(super) struct SnapshotHeader<'a> {
    pub stream: StreamField<'a>,
    pub version: u64,
    pub timestamp: &'a str,
}

/// A snapshot file (`snapshots/<type>.<id>/<version>.json`) as read back.
#[derive(Deserialize)]
#[non_exhaustive]
pub struct SnapshotDoc<'a> {
    /// The snapshot's stream.
    #[serde(borrow)]
    pub stream: StreamField<'a>,
    /// The stream version the snapshot was taken at.
    pub version: u64,
    /// When it was taken, RFC 3339 in UTC.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// `Some` when the state is embedded verbatim as JSON under `"state"`.
    #[serde(default, deserialize_with = "present")]
    pub state: Option<IgnoredAny>,
    /// The state as standard base64, when it is not JSON.
    #[serde(default, borrow)]
    pub state_base64: Option<Cow<'a, str>>,
}

impl SnapshotDoc<'_> {
    /// The header this file was written with.
    pub(super) fn header(&self) -> SnapshotHeader<'_> {
        SnapshotHeader {
            stream: StreamField {
                aggregate_type: Cow::Borrowed(&self.stream.aggregate_type),
                id: Cow::Borrowed(&self.stream.id),
            },
            version: self.version,
            timestamp: &self.timestamp,
        }
    }
}

/// The fields of a checkpoint file before its state.
#[derive(Serialize)]
pub(super) struct CheckpointHeader<'a> {
    pub name: &'a str,
    pub position: u64,
}

/// A checkpoint file (`checkpoints/<name>.json`) as read back. A missing `state` means "no
/// state"; `"state":null` is the state whose bytes are `null`.
#[derive(Deserialize)]
#[non_exhaustive]
pub struct CheckpointDoc<'a> {
    /// The projection's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The log position the projection has handled.
    pub position: u64,
    /// `Some` when the state is embedded verbatim as JSON under `"state"`.
    #[serde(default, deserialize_with = "present")]
    pub state: Option<IgnoredAny>,
    /// The state as standard base64, when it is not JSON.
    #[serde(default, borrow)]
    pub state_base64: Option<Cow<'a, str>>,
}

/// Deserializes a field that is present (even as `null`) into `Some`, so that `null` is not
/// confused with a missing field; with `#[serde(default)]` a missing field stays `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IgnoredAny>, D::Error> {
    IgnoredAny::deserialize(d).map(Some)
}

/// Whether `body` can be embedded verbatim: valid JSON on one line.
pub(super) fn is_inline_json(body: &[u8]) -> bool {
    !body.contains(&b'\n') && serde_json::from_slice::<IgnoredAny>(body).is_ok()
}

/// Appends to `out` the JSON object made of `header`'s fields followed by the body under `key`
/// (verbatim JSON) or `<key>_base64`; no body field at all when `body` is `None`.
pub(super) fn write_record<H: Serialize>(
    out: &mut Vec<u8>,
    header: &H,
    key: &str,
    body: Option<&[u8]>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    serde_json::to_writer(&mut *out, header)?;
    if out.last() != Some(&b'}') {
        return Err(serde::ser::Error::custom(
            "record header is not a JSON object",
        ));
    }
    out.pop();
    let has_fields = out.len() - start > 1;
    if let Some(body) = body {
        if has_fields {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        if is_inline_json(body) {
            out.extend_from_slice(b"\":");
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"_base64\":\"");
            out.extend_from_slice(BASE64.encode(body).as_bytes());
            out.push(b'"');
        }
    }
    out.push(b'}');
    Ok(())
}

/// Recovers the body of a record written by [`write_record`].
///
/// `text` is the whole record (without its newline), `header` the header it was written with,
/// `inline` whether `key` is present and `base64` the value of `<key>_base64`. Returns `None`
/// when the record has no body. When the record was written by this module the verbatim bytes
/// are returned; for a record edited by hand (fields reordered, reformatted) the body is
/// re-serialized from its parsed value.
pub(super) fn read_body<H: Serialize>(
    text: &[u8],
    header: &H,
    key: &str,
    inline: bool,
    base64: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    match (inline, base64) {
        (true, Some(_)) => Err(format!("both `{key}` and `{key}_base64` are present")),
        (false, Some(encoded)) => BASE64
            .decode(encoded)
            .map(Some)
            .map_err(|e| format!("bad `{key}_base64`: {e}")),
        (false, None) => Ok(None),
        (true, None) => {
            let mut prefix = Vec::with_capacity(256);
            write_record(&mut prefix, header, key, None).map_err(|e| e.to_string())?;
            prefix.pop();
            if prefix.len() > 1 {
                prefix.push(b',');
            }
            prefix.push(b'"');
            prefix.extend_from_slice(key.as_bytes());
            prefix.extend_from_slice(b"\":");
            if text.len() > prefix.len() && text.starts_with(&prefix) && text.ends_with(b"}") {
                let raw = &text[prefix.len()..text.len() - 1];
                if serde_json::from_slice::<IgnoredAny>(raw).is_ok() {
                    return Ok(Some(raw.to_vec()));
                }
            }
            let value: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(text).map_err(|e| e.to_string())?;
            let body = value.get(key).ok_or_else(|| format!("no `{key}` field"))?;
            serde_json::to_vec(body)
                .map(Some)
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct H<'a> {
        name: &'a str,
    }

    #[derive(Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "present")]
        body: Option<IgnoredAny>,
        #[serde(default)]
        body_base64: Option<String>,
    }

    fn round_trip(body: &[u8]) -> (String, Vec<u8>) {
        let header = H { name: "x\"y" };
        let mut out = Vec::new();
        write_record(&mut out, &header, "body", Some(body)).unwrap();
        let d: D = serde_json::from_slice(&out).unwrap();
        let back = read_body(
            &out,
            &header,
            "body",
            d.body.is_some(),
            d.body_base64.as_deref(),
        )
        .unwrap()
        .unwrap();
        (String::from_utf8(out).unwrap(), back)
    }

    #[test]
    fn json_bodies_are_verbatim() {
        for body in [
            &br#"{"b":1,"a":2}"#[..],
            br#" { "spaced" : [1, 2.50, 1e3] } "#,
            b"null",
            b"\"text\"",
            b"12345678901234567890123",
        ] {
            let (text, back) = round_trip(body);
            assert_eq!(back, body, "{text}");
            assert!(text.contains("\"body\":"), "{text}");
        }
    }

    #[test]
    fn other_bodies_are_base64() {
        for body in [&b""[..], b"\x00\xff", b"{\"a\":\n1}", b"{", b"1 2"] {
            let (text, back) = round_trip(body);
            assert_eq!(back, body, "{text}");
            assert!(text.contains("\"body_base64\":"), "{text}");
        }
    }

    /// Metadata of every JSON kind, floats that the default `serde_json` parser would read one
    /// ULP off included, reads back exactly, and the header re-serializes byte for byte (so the
    /// payload is still found verbatim).
    #[test]
    fn envelope_headers_re_serialize_identically() {
        let mut metadata = Metadata::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..2_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let f = f64::from_bits(x);
            if f.is_finite() {
                metadata.insert(format!("f{i}"), f.into());
            }
        }
        metadata.insert("s".into(), "\"q\" \\ é \u{1} \u{2028}".into());
        metadata.insert(
            "n".into(),
            serde_json::json!([u64::MAX, i64::MIN, 0.1, -0.0, null]),
        );
        metadata.insert("o".into(), serde_json::json!({"b": {"c": [true]}, "a": {}}));
        let tags = vec!["vip".to_owned(), "é \"x\"".to_owned()];
        let stream = StreamId::new("t", "i");
        let header = EventHeader {
            position: 1,
            stream: StreamField::of(&stream),
            sequence: 1,
            event_type: "E",
            version: 1,
            timestamp: "2001-02-03T04:05:06.123456789Z",
            command_id: Some("cmd \"1\""),
            correlation_id: None,
            causation_id: Some("c"),
            tags: &tags,
            metadata: &metadata,
            batch_size: Some(2),
        };
        let payload = br#"{"a" : 1}"#;
        let mut out = Vec::new();
        write_record(&mut out, &header, "payload", Some(payload)).unwrap();
        let line: EventLine<'_> = serde_json::from_slice(&out).unwrap();
        assert_eq!(line.metadata, metadata);
        for (key, value) in &metadata {
            if let Some(f) = value.as_f64() {
                let back = line.metadata[key].as_f64().map(f64::to_bits);
                assert_eq!(back, Some(f.to_bits()), "{key}: {value}");
            }
        }
        assert_eq!(line.tags, tags);
        assert_eq!(line.command_id.as_deref(), Some("cmd \"1\""));
        assert_eq!(line.correlation_id, None);
        let mut again = Vec::new();
        write_record(&mut again, &line.header(), "payload", None).unwrap();
        again.pop();
        assert!(
            out.starts_with(&again),
            "the header re-serializes identically"
        );
        let body = read_body(&out, &line.header(), "payload", true, None).unwrap();
        assert_eq!(
            body.as_deref(),
            Some(&payload[..]),
            "the payload is found verbatim"
        );
    }

    /// The allocation-free formatter writes what chrono writes, fraction lengths, years at
    /// the ends of the range, before year 0 and after 9999, and leap seconds included.
    #[test]
    fn timestamps_format_as_chrono_does() {
        let mut cases: Vec<DateTime<Utc>> = Vec::new();
        for secs in [
            0i64,
            1,
            -1,
            951_782_400, // 2000-02-29
            1_735_787_045,
            253_402_300_799,  // 9999-12-31T23:59:59
            253_402_300_800,  // 10000-01-01
            -62_167_219_200,  // 0000-01-01
            -62_167_219_201,  // -0001-12-31T23:59:59
            -100_000_000_000, // year -1199
        ] {
            for nanos in [
                0u32,
                1,
                999_999_999,
                123_000_000,
                123_456_000,
                123_456_789,
                100,
                5_000,
                7_000_000,
            ] {
                cases.extend(DateTime::from_timestamp(secs, nanos));
            }
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 400_000_000_000) as i64 - 100_000_000_000;
            let nanos = match x % 4 {
                0 => 0,
                1 => (x >> 8) as u32 % 1_000 * 1_000_000,
                2 => (x >> 8) as u32 % 1_000_000 * 1_000,
                _ => (x >> 8) as u32 % 1_000_000_000,
            };
            cases.extend(DateTime::from_timestamp(secs, nanos));
        }
        // A leap second (chrono keeps it as a nanosecond count of a second or more).
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        cases.push(leap);
        let mut out = String::new();
        for t in cases {
            format_timestamp_into(&mut out, &t);
            assert_eq!(out, format_timestamp(&t), "{t:?}");
            if (0..=9999).contains(&chrono::Datelike::year(&t)) {
                assert_eq!(parse_timestamp(&out).unwrap(), t, "{out}");
            }
        }
    }

    #[test]
    fn hand_edited_records_fall_back_to_the_value() {
        let text = br#"{"body":{"a":1},"name":"x\"y"}"#;
        let header = H { name: "x\"y" };
        let back = read_body(text, &header, "body", true, None).unwrap();
        assert_eq!(back.as_deref(), Some(&br#"{"a":1}"#[..]));
    }
}
