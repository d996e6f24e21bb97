//! The binary encoding of keys and records (format version 2; format-1 event records still
//! decode).
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
//! timestamp, and end with the raw payload (its length is what is left). Event records are
//! described on [`EventFields`].
//!
//! # Format versions
//!
//! - 1: event records without envelope ids or tags, metadata as string pairs.
//! - 2: event records start with a 0 marker and carry the command, correlation and causation
//!   ids, tags and JSON metadata. Format-1 records stay as they are and are read by their first
//!   byte (never 0), so a format-1 store is upgraded by bumping its meta version only.

use chrono::{DateTime, Utc};
use es_core::store::{Checkpoint, Metadata, NewEvent, Snapshot, StoreError, StreamId};

/// The encoding version written to the meta database; bump it on any incompatible change.
/// Format 3 may hold events the stream index does not list yet (see `pending.rs`): format-2
/// code must not open it. Formats 1 and 2 open as they are (their index is complete).
pub(super) const FORMAT_VERSION: u32 = 3;

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

/// The stream id a stream key was made from ([`stream_key`]'s inverse).
pub(super) fn parse_stream_key(key: &[u8]) -> Result<StreamId, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("lmdb: {key:?} is not a stream key"));
    let mut rest = key;
    let mut part = || -> Result<String, StoreError> {
        let mut len = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or_else(corrupt)?;
            rest = tail;
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 14 {
                return Err(corrupt());
            }
        }
        let len = usize::try_from(len).map_err(|_| corrupt())?;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (text, tail) = rest.split_at(len);
        rest = tail;
        String::from_utf8(text.to_vec()).map_err(|_| corrupt())
    };
    let aggregate_type = part()?;
    let aggregate_id = part()?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(StreamId::new(aggregate_type, aggregate_id))
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

/// The first byte of a format-2 event record. A format-1 record starts with the varint length
/// of its (never empty) aggregate type, so its first byte is never 0.
const RECORD_V2: u8 = 0x00;

/// Bits of the envelope flags byte of a format-2 record.
mod flag {
    /// A command id follows.
    pub(super) const COMMAND: u8 = 1 << 0;
    /// A correlation id follows.
    pub(super) const CORRELATION: u8 = 1 << 1;
    /// The correlation id is the command id (not stored again).
    pub(super) const CORRELATION_IS_COMMAND: u8 = 1 << 2;
    /// A causation id follows.
    pub(super) const CAUSATION: u8 = 1 << 3;
    /// The causation id is the command id (not stored again).
    pub(super) const CAUSATION_IS_COMMAND: u8 = 1 << 4;
    /// A tag count and the tags follow.
    pub(super) const TAGS: u8 = 1 << 5;
    /// Metadata follows: a little-endian `u32` length and that many bytes of a JSON object.
    pub(super) const METADATA: u8 = 1 << 6;
    /// Every bit this version knows.
    pub(super) const KNOWN: u8 = COMMAND
        | CORRELATION
        | CORRELATION_IS_COMMAND
        | CAUSATION
        | CAUSATION_IS_COMMAND
        | TAGS
        | METADATA;
}

/// One event of the global log to encode (everything but its position, which is the key).
///
/// A record (format 2) is:
///
/// ```text
/// 0x00                                  marker (format-1 records never start with 0)
/// varint len, aggregate type
/// varint len, aggregate id
/// varint sequence
/// i64 LE seconds, u32 LE nanoseconds    timestamp
/// varint event version
/// varint len, event type
/// u8 flags                              which envelope parts follow (see `flag`)
/// [varint len, command id]              flag COMMAND
/// [varint len, correlation id]          flag CORRELATION (absent when it is the command id)
/// [varint len, causation id]            flag CAUSATION (absent when it is the command id)
/// [varint count, (varint len, tag)*]    flag TAGS
/// [u32 LE len, metadata JSON object]    flag METADATA
/// payload                               the rest
/// ```
///
/// A format-1 record is the same without the marker, the flags and what they announce, and
/// with `varint count, (varint len, key, varint len, string value)*` for its metadata.
pub(super) struct EventFields<'a> {
    pub(super) stream: &'a StreamId,
    pub(super) sequence: u64,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) event_type: &'a str,
    pub(super) event_version: u32,
    pub(super) command_id: Option<&'a str>,
    pub(super) correlation_id: Option<&'a str>,
    pub(super) causation_id: Option<&'a str>,
    pub(super) tags: &'a [String],
    pub(super) metadata: &'a Metadata,
    pub(super) payload: &'a [u8],
}

impl<'a> EventFields<'a> {
    /// The fields of `event`, appended to `stream` at `sequence`; `store_time` stands in for a
    /// timestamp the event does not carry.
    pub(super) fn of(
        stream: &'a StreamId,
        sequence: u64,
        store_time: DateTime<Utc>,
        event: &'a NewEvent,
    ) -> Self {
        Self {
            stream,
            sequence,
            timestamp: event.timestamp.unwrap_or(store_time),
            event_type: &event.event_type,
            event_version: event.event_version,
            command_id: event.envelope.command_id.as_deref(),
            correlation_id: event.envelope.correlation_id.as_deref(),
            causation_id: event.envelope.causation_id.as_deref(),
            tags: &event.envelope.tags,
            metadata: &event.envelope.metadata,
            payload: &event.payload,
        }
    }

    /// Writes the record into `out` (cleared first).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] when the metadata cannot be written as JSON or is larger
    /// than 4 GiB.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        out.clear();
        out.push(RECORD_V2);
        put_bytes(out, self.stream.aggregate_type.as_bytes());
        put_bytes(out, self.stream.aggregate_id.as_bytes());
        put_varint(out, self.sequence);
        put_timestamp(out, self.timestamp);
        put_varint(out, u64::from(self.event_version));
        put_bytes(out, self.event_type.as_bytes());

        let command = self.command_id;
        let mut flags = 0u8;
        // An id equal to the command id is kept as a flag only.
        let correlation = match self.correlation_id {
            Some(id) if Some(id) == command => {
                flags |= flag::CORRELATION_IS_COMMAND;
                None
            }
            other => other,
        };
        let causation = match self.causation_id {
            Some(id) if Some(id) == command => {
                flags |= flag::CAUSATION_IS_COMMAND;
                None
            }
            other => other,
        };
        for (present, bit) in [
            (command.is_some(), flag::COMMAND),
            (correlation.is_some(), flag::CORRELATION),
            (causation.is_some(), flag::CAUSATION),
            (!self.tags.is_empty(), flag::TAGS),
            (!self.metadata.is_empty(), flag::METADATA),
        ] {
            if present {
                flags |= bit;
            }
        }
        out.push(flags);
        for id in [command, correlation, causation].into_iter().flatten() {
            put_bytes(out, id.as_bytes());
        }
        if !self.tags.is_empty() {
            put_varint(out, self.tags.len() as u64);
            for tag in self.tags {
                put_bytes(out, tag.as_bytes());
            }
        }
        if !self.metadata.is_empty() {
            // The length is patched in once the JSON is written: no buffer of its own.
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            serde_json::to_writer(&mut *out, self.metadata).map_err(|e| {
                StoreError::InvalidInput(format!("event metadata cannot be written as JSON: {e}"))
            })?;
            let len = u32::try_from(out.len() - at - 4).map_err(|_| {
                StoreError::InvalidInput("event metadata is larger than 4 GiB".to_owned())
            })?;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(self.payload);
        Ok(())
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

    #[cold]
    #[inline(never)]
    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {detail}", (self.what)()))
    }

    /// Inlined, like the other small reads: every field of every decoded event passes here.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        match self.bytes.split_at_checked(n) {
            Some((head, rest)) => {
                self.bytes = rest;
                Ok(head)
            }
            None => Err(self.corrupt("record is truncated")),
        }
    }

    #[inline]
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
        self.str().map(str::to_owned)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, StoreError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    /// A shared id: one allocation, no intermediate `String`.
    fn id(&mut self) -> Result<std::sync::Arc<str>, StoreError> {
        self.str().map(std::sync::Arc::from)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, StoreError> {
        let [byte] = self.take(1)? else {
            return Err(self.corrupt("record is truncated"));
        };
        Ok(*byte)
    }

    fn u32_le(&mut self) -> Result<u32, StoreError> {
        let bytes = self.take(4)?;
        let array = <[u8; 4]>::try_from(bytes).map_err(|_| self.corrupt("record is truncated"))?;
        Ok(u32::from_le_bytes(array))
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
    pub(super) command_id: Option<std::sync::Arc<str>>,
    pub(super) correlation_id: Option<std::sync::Arc<str>>,
    pub(super) causation_id: Option<std::sync::Arc<str>>,
    pub(super) tags: Vec<String>,
    pub(super) metadata: Metadata,
    pub(super) payload: Vec<u8>,
}

/// Whether `bytes` is a format-2 record; skips its marker when it is.
fn is_v2(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.split_first() {
        Some((&RECORD_V2, rest)) => (true, rest),
        _ => (false, bytes),
    }
}

/// Decodes an event record written by [`EventFields::encode_into`] (format 2) or by format 1.
pub(super) fn decode_event(bytes: &[u8], position: u64) -> Result<DecodedEvent, StoreError> {
    let what = || format!("event at position {position}");
    let (v2, bytes) = is_v2(bytes);
    let mut r = Reader::new(bytes, &what);
    let aggregate_type = r.string()?;
    let aggregate_id = r.string()?;
    let sequence = r.varint()?;
    let timestamp = r.timestamp()?;
    let event_version =
        u32::try_from(r.varint()?).map_err(|_| r.corrupt("event version out of range"))?;
    let event_type = r.string()?;
    let mut event = DecodedEvent {
        stream: StreamId {
            aggregate_type,
            aggregate_id,
        },
        sequence,
        timestamp,
        event_version,
        event_type,
        command_id: None,
        correlation_id: None,
        causation_id: None,
        tags: Vec::new(),
        metadata: Metadata::new(),
        payload: Vec::new(),
    };
    if v2 {
        decode_envelope(&mut r, &mut event)?;
    } else {
        // Format 1: string metadata only.
        let count = r.len()?;
        for _ in 0..count {
            let key = r.string()?;
            let value = r.string()?;
            event.metadata.insert(key, serde_json::Value::String(value));
        }
    }
    event.payload = r.rest().to_vec();
    Ok(event)
}

/// Reads the envelope of a format-2 record (after its event type) into `event`.
fn decode_envelope(r: &mut Reader<'_>, event: &mut DecodedEvent) -> Result<(), StoreError> {
    let flags = r.u8()?;
    if flags & !flag::KNOWN != 0 {
        return Err(r.corrupt(&format!("unknown envelope flags {flags:#04x}")));
    }
    let has = |bit: u8| flags & bit != 0;
    if has(flag::CORRELATION) && has(flag::CORRELATION_IS_COMMAND)
        || has(flag::CAUSATION) && has(flag::CAUSATION_IS_COMMAND)
        || !has(flag::COMMAND)
            && (has(flag::CORRELATION_IS_COMMAND) || has(flag::CAUSATION_IS_COMMAND))
    {
        return Err(r.corrupt(&format!("inconsistent envelope flags {flags:#04x}")));
    }
    let command = if has(flag::COMMAND) {
        Some(r.id()?)
    } else {
        None
    };
    event.correlation_id = if has(flag::CORRELATION) {
        Some(r.id()?)
    } else if has(flag::CORRELATION_IS_COMMAND) {
        command.clone()
    } else {
        None
    };
    event.causation_id = if has(flag::CAUSATION) {
        Some(r.id()?)
    } else if has(flag::CAUSATION_IS_COMMAND) {
        command.clone()
    } else {
        None
    };
    event.command_id = command;
    if has(flag::TAGS) {
        let count = r.len()?;
        // Each tag takes at least one byte: a count above what is left is corrupt, and
        // must not reserve memory.
        let mut tags = Vec::with_capacity(count.min(r.bytes.len()));
        for _ in 0..count {
            tags.push(r.string()?);
        }
        event.tags = tags;
    }
    if has(flag::METADATA) {
        let len = r.u32_le()?;
        let len = usize::try_from(len).map_err(|_| r.corrupt("length does not fit in memory"))?;
        let json = r.take(len)?;
        event.metadata = serde_json::from_slice(json)
            .map_err(|e| r.corrupt(&format!("metadata is not a JSON object: {e}")))?;
    }
    Ok(())
}

/// The aggregate type (as stored bytes: a filter compares them without validating UTF-8 first)
/// and the event type of an event record, read without decoding (or copying) the rest.
pub(super) fn head_of(bytes: &[u8], position: u64) -> Result<(&[u8], &str), StoreError> {
    let what = || format!("event at position {position}");
    let (_, bytes) = is_v2(bytes);
    let (aggregate_type, start, len) = {
        let mut r = Reader::new(bytes, &what);
        let aggregate_len = r.len()?;
        let aggregate_start = bytes.len() - r.bytes.len();
        r.take(aggregate_len)?;
        r.bytes()?;
        r.varint()?;
        r.take(12)?;
        r.varint()?;
        let len = r.len()?;
        (
            (aggregate_start, aggregate_len),
            bytes.len() - r.bytes.len(),
            len,
        )
    };
    let aggregate_type = bytes
        .get(aggregate_type.0..aggregate_type.0.saturating_add(aggregate_type.1))
        .ok_or_else(|| StoreError::Corrupt(format!("{}: record is truncated", what())))?;
    let event_type = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| StoreError::Corrupt(format!("{}: record is truncated", what())))?;
    let event_type = std::str::from_utf8(event_type)
        .map_err(|_| StoreError::Corrupt(format!("{}: event type is not UTF-8", what())))?;
    Ok((aggregate_type, event_type))
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
mod tests;
