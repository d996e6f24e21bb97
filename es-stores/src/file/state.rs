//! The state of an open [`FileStore`](super::FileStore) that its handles, its writer thread
//! and its blocking read tasks share: the directory, the in-memory index, the head, and
//! reading events back from the log.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use es_core::store::{RecordedEvent, StoreError};
use parking_lot::RwLock;
use tokio::sync::watch;

use super::format::{EventLine, parse_timestamp, read_body};
use super::index::{Index, Line};
use super::layout::read_exact_at;

/// The most bytes read from the log in one positional read.
const MAX_READ: u64 = 4 << 20;

/// The store's state, shared with the writer thread and with blocking read tasks (which
/// therefore hold no lock and never delay closing).
pub(super) struct State {
    pub(super) dir: PathBuf,
    pub(super) events_path: PathBuf,
    /// A read-only handle for positional reads of committed lines.
    pub(super) reader: File,
    pub(super) index: RwLock<Index>,
    pub(super) head: watch::Sender<u64>,
    /// Held to read lines of the log, and exclusively while removed lines are overwritten
    /// (see `delete.rs`), so that no reader sees a line half overwritten.
    pub(super) rewrite: RwLock<()>,
}

impl State {
    /// Reads and decodes the given committed events (in the given order).
    pub(super) fn read_events(
        &self,
        wanted: &[(u64, Line)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::with_capacity(wanted.len());
        let mut chunk = Vec::new();
        let _reading = self.rewrite.read();
        let mut rest = wanted;
        while let Some(&(_, first)) = rest.first() {
            // Coalesce adjacent lines into one read.
            let mut end = first.offset + first.len;
            let mut run = 1;
            while let Some(&(_, next)) = rest.get(run) {
                if next.offset != end || end - first.offset >= MAX_READ {
                    break;
                }
                end += next.len;
                run += 1;
            }
            chunk.resize((end - first.offset) as usize, 0);
            read_exact_at(&self.reader, &mut chunk, first.offset).map_err(|e| {
                StoreError::io(format!("reading {}", self.events_path.display()), e)
            })?;
            for &(position, line) in &rest[..run] {
                let at = (line.offset - first.offset) as usize;
                let bytes = chunk.get(at..at + line.len as usize).unwrap_or_default();
                // A line removed after `wanted` was taken reads as a placeholder: skipped.
                events.extend(self.decode(position, bytes)?);
            }
            rest = &rest[run..];
        }
        Ok(events)
    }

    /// Decodes the line of the event at `position` (its line number).
    fn decode(&self, position: u64, bytes: &[u8]) -> Result<Option<RecordedEvent>, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "{}, line {position}: {what}",
                self.events_path.display()
            ))
        };
        let text = bytes
            .strip_suffix(b"\n")
            .ok_or_else(|| corrupt("the line has no trailing newline"))?;
        let line: EventLine<'_> = serde_json::from_slice(text)
            .map_err(|e| corrupt(&format!("not a valid event line: {e}")))?;
        if line.position != position {
            return Err(corrupt(&format!(
                "position {} where {position} was expected",
                line.position
            )));
        }
        if line.removed {
            return Ok(None);
        }
        let payload = read_body(
            text,
            &line.header(),
            "payload",
            line.payload.is_some(),
            line.payload_base64.as_deref(),
        )
        .map_err(|e| corrupt(&e))?
        .ok_or_else(|| corrupt("no `payload` or `payload_base64`"))?;
        let timestamp = parse_timestamp(&line.timestamp).map_err(|e| corrupt(&e))?;
        Ok(Some(RecordedEvent {
            position,
            stream: line.stream.to_stream_id(),
            sequence: line.sequence,
            event_type: line.event_type,
            event_version: line.version,
            timestamp,
            envelope: es_core::store::Envelope {
                command_id: line.command_id.map(Arc::from),
                correlation_id: line.correlation_id.map(Arc::from),
                causation_id: line.causation_id.map(Arc::from),
                tags: line.tags,
                metadata: line.metadata,
            },
            payload,
        }))
    }
}
