//! The binary encoding of keys and records (format version 1).
//!
//! Keys are built so that LMDB's byte order is the order the store reads in:
//!
//! - global log: `position` as a big-endian `u64`;
//! - stream key: `varint(len(type)) type varint(len(id)) id`. The length prefixes make stream keys
//!   prefix-free: no stream's key is a prefix of another stream's key, so a prefix scan over one
//!   stream never sees a neighbour;
//! - per-stream index: `stream key ++ sequence (big-endian u64)`;
//! - snapshots: `stream key ++ version (big-endian u64)`.
//!
//! Values use LEB128 varints for lengths and counts, fixed little-endian integers for the
//! timestamp, and end with the raw payload (its length is what is left).

use chrono::{DateTime, Utc};
use es_core::store::{Checkpoint, Metadata, Snapshot, StoreError, StreamId};

/// The encoding version written to the meta database; bump it on any incompatible change.
pub(super) const FORMAT_VERSION: u32 = 1;

/// The longest stream key: each part of a valid stream id (see [`StreamId::validate`]) is
/// under 16,384 bytes, so its length prefix takes at most two varint bytes.
pub(super) const MAX_STREAM_KEY: usize = 2 + StreamId::MAX_TYPE_LEN + 2 + StreamId::MAX_ID_LEN;
const _: () = assert!(StreamId::MAX_TYPE_LEN < 1 << 14 && StreamId::MAX_ID_LEN < 1 << 14);

/// Appends `value` as an LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_timestamp(out: &mut Vec<u8>, timestamp: DateTime<Utc>) {
    out.extend_from_slice(&timestamp.timestamp().to_le_bytes());
    out.extend_from_slice(&timestamp.timestamp_subsec_nanos().to_le_bytes());
}

/// The key of `stream` (see the module docs): at most [`MAX_STREAM_KEY`] bytes for a valid
/// stream id.
pub(super) fn stream_key(stream: &StreamId) -> Vec<u8> {
    let mut key =
        Vec::with_capacity(stream.aggregate_type.len() + stream.aggregate_id.len() + 2 + 8);
    put_bytes(&mut key, stream.aggregate_type.as_bytes());
    put_bytes(&mut key, stream.aggregate_id.as_bytes());
    key
}

/// `prefix ++ n` (big-endian): an index or snapshot key.
pub(super) fn suffixed(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// Reads a big-endian `u64` (a position or version stored as a value).
pub(super) fn be_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!("{what}: expected 8 bytes, got {}", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(array))
}

/// The big-endian `u64` at the end of an index or snapshot key.
pub(super) fn key_suffix(key: &[u8], what: &str) -> Result<u64, StoreError> {
    let start = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: key of {} bytes", key.len())))?;
    be_u64(&key[start..], what)
}

/// Encodes one event of the global log (everything but its position, which is the key).
pub(super) struct EventFields<'a> {
    pub(super) stream: &'a StreamId,
    pub(super) sequence: u64,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) event_type: &'a str,
    pub(super) event_version: u32,
    pub(super) metadata: &'a Metadata,
    pub(super) payload: &'a [u8],
}

impl EventFields<'_> {
    /// Writes the record into `out` (cleared first).
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        put_bytes(out, self.stream.aggregate_type.as_bytes());
        put_bytes(out, self.stream.aggregate_id.as_bytes());
        put_varint(out, self.sequence);
        put_timestamp(out, self.timestamp);
        put_varint(out, u64::from(self.event_version));
        put_bytes(out, self.event_type.as_bytes());
        put_varint(out, self.metadata.len() as u64);
        for (key, value) in self.metadata {
            put_bytes(out, key.as_bytes());
            put_bytes(out, value.as_bytes());
        }
        out.extend_from_slice(self.payload);
    }
}

/// A cursor over an encoded value; every read fails with [`StoreError::Corrupt`] when the bytes
/// run out or do not parse.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    /// Names the record in error messages; only called on error (no formatting on the hot path).
    what: &'a dyn Fn() -> String,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], what: &'a dyn Fn() -> String) -> Self {
        Self { bytes, what }
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {detail}", (self.what)()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(self.corrupt("record is truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.take(1)? else {
                return Err(self.corrupt("record is truncated"));
            };
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.corrupt("varint is too long"))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let len = self.varint()?;
        usize::try_from(len).map_err(|_| self.corrupt("length does not fit in memory"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.len()?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| self.corrupt("string is not UTF-8"))
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let [byte] = self.take(1)? else {
            return Err(self.corrupt("record is truncated"));
        };
        Ok(*byte)
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>, StoreError> {
        let secs = self.take(8)?;
        let nanos = self.take(4)?;
        let secs = i64::from_le_bytes(secs.try_into().map_err(|_| self.corrupt("timestamp"))?);
        let nanos = u32::from_le_bytes(nanos.try_into().map_err(|_| self.corrupt("timestamp"))?);
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| self.corrupt("timestamp out of range"))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// A decoded event of the global log (the caller supplies the position).
pub(super) struct DecodedEvent {
    pub(super) stream: StreamId,
    pub(super) sequence: u64,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) event_version: u32,
    pub(super) event_type: String,
    pub(super) metadata: Metadata,
    pub(super) payload: Vec<u8>,
}

/// Decodes an event record written by [`EventFields::encode_into`].
pub(super) fn decode_event(bytes: &[u8], position: u64) -> Result<DecodedEvent, StoreError> {
    let what = || format!("event at position {position}");
    let mut r = Reader::new(bytes, &what);
    let aggregate_type = r.string()?;
    let aggregate_id = r.string()?;
    let sequence = r.varint()?;
    let timestamp = r.timestamp()?;
    let event_version =
        u32::try_from(r.varint()?).map_err(|_| r.corrupt("event version out of range"))?;
    let event_type = r.string()?;
    let count = r.len()?;
    let mut metadata = Metadata::new();
    for _ in 0..count {
        let key = r.string()?;
        let value = r.string()?;
        metadata.insert(key, value);
    }
    let payload = r.rest().to_vec();
    Ok(DecodedEvent {
        stream: StreamId {
            aggregate_type,
            aggregate_id,
        },
        sequence,
        timestamp,
        event_version,
        event_type,
        metadata,
        payload,
    })
}

/// The event type of an event record, read without decoding (or copying) the rest.
pub(super) fn event_type_of(bytes: &[u8], position: u64) -> Result<&str, StoreError> {
    let what = || format!("event at position {position}");
    let (start, len) = {
        let mut r = Reader::new(bytes, &what);
        r.bytes()?;
        r.bytes()?;
        r.varint()?;
        r.take(12)?;
        r.varint()?;
        let len = r.len()?;
        (bytes.len() - r.bytes.len(), len)
    };
    let event_type = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| StoreError::Corrupt(format!("{}: record is truncated", what())))?;
    std::str::from_utf8(event_type)
        .map_err(|_| StoreError::Corrupt(format!("{}: event type is not UTF-8", what())))
}

/// Encodes a snapshot value (the stream and version are in the key).
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + snapshot.state.len());
    put_timestamp(&mut out, snapshot.timestamp);
    out.extend_from_slice(&snapshot.state);
    out
}

/// Decodes a snapshot value.
pub(super) fn decode_snapshot(
    stream: &StreamId,
    version: u64,
    bytes: &[u8],
) -> Result<Snapshot, StoreError> {
    let what = || format!("snapshot of {stream} at version {version}");
    let mut r = Reader::new(bytes, &what);
    let timestamp = r.timestamp()?;
    Ok(Snapshot {
        stream: stream.clone(),
        version,
        state: r.rest().to_vec(),
        timestamp,
    })
}

/// Encodes a checkpoint value.
pub(super) fn encode_checkpoint(position: u64, state: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + state.map_or(0, <[u8]>::len));
    put_varint(&mut out, position);
    match state {
        Some(state) => {
            out.push(1);
            out.extend_from_slice(state);
        }
        None => out.push(0),
    }
    out
}

/// Decodes a checkpoint value.
pub(super) fn decode_checkpoint(name: &str, bytes: &[u8]) -> Result<Checkpoint, StoreError> {
    let what = || format!("checkpoint {name:?}");
    let mut r = Reader::new(bytes, &what);
    let position = r.varint()?;
    let state = match r.u8()? {
        0 => None,
        1 => Some(r.rest().to_vec()),
        other => return Err(r.corrupt(&format!("unknown state tag {other}"))),
    };
    Ok(Checkpoint { position, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips() -> Result<(), StoreError> {
        let stream = StreamId::new("bank_account", "acc-1");
        let mut metadata = Metadata::new();
        metadata.insert("correlation".into(), "c-1".into());
        let timestamp = Utc::now();
        let fields = EventFields {
            stream: &stream,
            sequence: 300,
            timestamp,
            event_type: "Deposited",
            event_version: 7,
            metadata: &metadata,
            payload: br#"{"amount":5}"#,
        };
        let mut buf = Vec::new();
        fields.encode_into(&mut buf);
        let back = decode_event(&buf, 9)?;
        assert_eq!(back.stream, stream);
        assert_eq!(back.sequence, 300);
        assert_eq!(back.timestamp, timestamp);
        assert_eq!(back.event_version, 7);
        assert_eq!(back.event_type, "Deposited");
        assert_eq!(back.metadata, metadata);
        assert_eq!(back.payload, br#"{"amount":5}"#);
        for cut in 0..buf.len() - 12 {
            assert!(decode_event(&buf[..cut], 9).is_err(), "cut at {cut}");
        }
        Ok(())
    }

    #[test]
    fn the_event_type_is_read_without_decoding() -> Result<(), StoreError> {
        let stream = StreamId::new("t", "i");
        let metadata = Metadata::from([("k".to_owned(), "v".to_owned())]);
        let mut out = Vec::new();
        EventFields {
            stream: &stream,
            sequence: 3,
            timestamp: Utc::now(),
            event_type: "Deposited",
            event_version: 2,
            metadata: &metadata,
            payload: b"{}",
        }
        .encode_into(&mut out);
        assert_eq!(event_type_of(&out, 9)?, "Deposited");
        assert!(event_type_of(&out[..5], 9).is_err());
        Ok(())
    }

    #[test]
    fn stream_keys_are_prefix_free() {
        let a = stream_key(&StreamId::new("a", "b"));
        let b = stream_key(&StreamId::new("a", "bc"));
        let c = stream_key(&StreamId::new("ab", ""));
        assert!(!b.starts_with(&a));
        assert!(!c.starts_with(&a) && !a.starts_with(&c));
        assert!(!suffixed(&b, 1).starts_with(&a));
    }

    #[test]
    fn checkpoint_round_trips() -> Result<(), StoreError> {
        let bytes = encode_checkpoint(u64::MAX, Some(b"state"));
        let back = decode_checkpoint("p", &bytes)?;
        assert_eq!(back.position, u64::MAX);
        assert_eq!(back.state.as_deref(), Some(&b"state"[..]));
        let back = decode_checkpoint("p", &encode_checkpoint(3, None))?;
        assert_eq!(back.state, None);
        Ok(())
    }
}
