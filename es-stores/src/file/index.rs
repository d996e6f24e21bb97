//! The in-memory index of the event log: where each event's line is, and each stream's events.
//!
//! Payloads are not kept in memory: an event costs 16 bytes in [`Index::lines`] plus 8 in its
//! stream's position list, and reads seek to the lines they need.

use std::collections::HashMap;

use es_core::store::StreamId;

/// Where one event's line is in the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line {
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Length in bytes, including the trailing newline.
    pub len: u64,
}

/// Stream heads and line locations of every committed event.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// The line of the event at position `p` is at index `p - 1`.
    pub lines: Vec<Line>,
    /// Per stream, the positions of its events in sequence order (sequence `s` at index `s - 1`).
    pub streams: HashMap<StreamId, Vec<u64>, foldhash::fast::RandomState>,
}

impl Index {
    /// The highest committed position (0 when empty).
    pub(super) fn head(&self) -> u64 {
        self.lines.len() as u64
    }

    /// The stream's version: its number of events.
    pub(super) fn version(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).map_or(0, |p| p.len() as u64)
    }

    /// The line of the event at `position`, if committed.
    pub(super) fn line(&self, position: u64) -> Option<Line> {
        let i = usize::try_from(position.checked_sub(1)?).ok()?;
        self.lines.get(i).copied()
    }

    /// Records the next event of `stream` (its position is `head() + 1`).
    pub(super) fn push(&mut self, stream: &StreamId, line: Line) {
        self.lines.push(line);
        let position = self.head();
        match self.streams.get_mut(stream) {
            Some(positions) => positions.push(position),
            None => {
                self.streams.insert(stream.clone(), vec![position]);
            }
        }
    }

    /// Records the next events of `stream`, one per line (their positions follow `head()`),
    /// with one lookup of the stream.
    pub(super) fn push_run(
        &mut self,
        stream: &StreamId,
        lines: impl ExactSizeIterator<Item = Line>,
    ) {
        let first = self.head() + 1;
        let count = lines.len() as u64;
        self.lines.extend(lines);
        let positions = first..first + count;
        match self.streams.get_mut(stream) {
            Some(known) => known.extend(positions),
            None => {
                self.streams.insert(stream.clone(), positions.collect());
            }
        }
    }

    /// Forgets the last `n` events, which all belong to `stream` (an incomplete append dropped
    /// during recovery).
    pub(super) fn pop(&mut self, stream: &StreamId, n: usize) {
        let keep = self.lines.len().saturating_sub(n);
        self.lines.truncate(keep);
        if let Some(positions) = self.streams.get_mut(stream) {
            positions.truncate(positions.len().saturating_sub(n));
            if positions.is_empty() {
                self.streams.remove(stream);
            }
        }
    }
}
