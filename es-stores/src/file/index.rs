//! The in-memory index of the event log: where each event's line is, and each stream's events.
//!
//! Payloads are not kept in memory: an event costs 16 bytes in [`Index::lines`] plus 8 in its
//! stream's position list, and reads seek to the lines they need. Each stream has a number
//! (its slot, in the order streams were first met), so the writer finds a stream once per
//! append and then works with the number.

use std::collections::HashMap;

use es_core::store::StreamId;

/// Where one event's line is in the log file.
/// The bit of [`Line::len`] that marks a removed event (no line is that long).
const REMOVED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Line {
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Length in bytes, including the trailing newline.
    pub len: u64,
}

/// Stream heads and line locations of every committed event.
impl Line {
    /// Whether the event was removed (`EventStore::truncate_stream`): its line holds a
    /// placeholder.
    pub(super) fn is_removed(self) -> bool {
        self.len & REMOVED != 0
    }
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// The line of the event at position `p` is at index `p - 1`.
    pub lines: Vec<Line>,
    /// Each stream's number: its slot in `positions`.
    numbers: HashMap<StreamId, u32, foldhash::fast::RandomState>,
    /// Per stream number, the positions of its events in sequence order (sequence `s` at index
    /// `s - 1`). A slot whose stream lost all its events (recovery) stays empty.
    positions: Vec<Vec<u64>>,
}

impl Index {
    /// The highest committed position (0 when empty).
    pub(super) fn head(&self) -> u64 {
        self.lines.len() as u64
    }

    /// The number of streams with events.
    pub(super) fn stream_count(&self) -> usize {
        self.numbers.len()
    }

    /// The stream's number, if it has events.
    pub(super) fn number(&self, stream: &StreamId) -> Option<u32> {
        self.numbers.get(stream).copied()
    }

    /// The version (number of events) of the stream numbered `number`.
    pub(super) fn version_of(&self, number: u32) -> u64 {
        self.positions
            .get(number as usize)
            .map_or(0, |p| p.len() as u64)
    }

    /// The stream's version: its number of events.
    pub(super) fn version(&self, stream: &StreamId) -> u64 {
        self.number(stream).map_or(0, |n| self.version_of(n))
    }

    /// The positions of the stream's events, in sequence order.
    pub(super) fn positions(&self, stream: &StreamId) -> Option<&[u64]> {
        let number = self.number(stream)?;
        self.positions.get(number as usize).map(Vec::as_slice)
    }

    /// Every stream with events and its version, in no particular order.
    pub(super) fn heads(&self) -> impl Iterator<Item = (&StreamId, u64)> {
        self.numbers
            .iter()
            .map(|(stream, &n)| (stream, self.version_of(n)))
    }

    /// The line of the event at `position`, if committed.
    pub(super) fn line(&self, position: u64) -> Option<Line> {
        let i = usize::try_from(position.checked_sub(1)?).ok()?;
        self.lines.get(i).copied().filter(|line| !line.is_removed())
    }

    /// Marks the event at `position` removed: reads skip it, versions and positions stay.
    pub(super) fn mark_removed(&mut self, position: u64) {
        if let Some(line) = position
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.lines.get_mut(i))
        {
            line.len |= REMOVED;
        }
    }

    /// The end of the last line: the log's length.
    pub(super) fn end(&self) -> u64 {
        self.lines
            .last()
            .map_or(0, |l| l.offset + (l.len & !REMOVED))
    }

    /// Records the next event of `stream` (its position is `head() + 1`).
    pub(super) fn push(&mut self, stream: &StreamId, line: Line) {
        self.push_run(stream, std::iter::once(line));
    }

    /// Records the next events of `stream`, one per line (their positions follow `head()`),
    /// with one lookup of the stream.
    pub(super) fn push_run(
        &mut self,
        stream: &StreamId,
        lines: impl ExactSizeIterator<Item = Line>,
    ) {
        let number = match self.numbers.get(stream) {
            Some(&n) => n,
            None => {
                let n = u32::try_from(self.positions.len()).unwrap_or(u32::MAX);
                self.numbers.insert(stream.clone(), n);
                self.positions.push(Vec::new());
                n
            }
        };
        self.push_numbered(number, lines);
    }

    /// Records the next events of the stream numbered `number` (see [`Index::push_run`]).
    pub(super) fn push_numbered(
        &mut self,
        number: u32,
        lines: impl ExactSizeIterator<Item = Line>,
    ) {
        let first = self.head() + 1;
        let count = lines.len() as u64;
        self.lines.extend(lines);
        if let Some(positions) = self.positions.get_mut(number as usize) {
            positions.extend(first..first + count);
        }
    }

    /// Forgets the last `n` events, which all belong to `stream` (an incomplete append dropped
    /// during recovery).
    pub(super) fn pop(&mut self, stream: &StreamId, n: usize) {
        let keep = self.lines.len().saturating_sub(n);
        self.lines.truncate(keep);
        let Some(number) = self.number(stream) else {
            return;
        };
        if let Some(positions) = self.positions.get_mut(number as usize) {
            positions.truncate(positions.len().saturating_sub(n));
            if positions.is_empty() {
                self.numbers.remove(stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(offset: u64) -> Line {
        Line { offset, len: 10 }
    }

    #[test]
    fn streams_are_numbered_and_found() {
        let (a, b) = (StreamId::new("t", "a"), StreamId::new("t", "b"));
        let mut index = Index::default();
        index.push(&a, line(0));
        index.push_numbered(0, [line(10)].into_iter());
        index.push_run(&b, [line(20), line(30)].into_iter());
        assert_eq!((index.number(&a), index.number(&b)), (Some(0), Some(1)));
        assert_eq!(index.head(), 4);
        assert_eq!(index.positions(&a), Some(&[1, 2][..]));
        assert_eq!(index.positions(&b), Some(&[3, 4][..]));
        assert_eq!((index.version(&a), index.version(&b)), (2, 2));
        assert_eq!(index.line(3), Some(line(20)));
        let mut heads: Vec<_> = index.heads().collect();
        heads.sort();
        assert_eq!(heads, [(&a, 2), (&b, 2)]);
        // Recovery drops b's events: b is gone, a keeps its events and its number.
        index.pop(&b, 2);
        assert_eq!(index.head(), 2);
        assert_eq!((index.version(&b), index.positions(&b)), (0, None));
        assert_eq!(index.stream_count(), 1);
        index.push(&b, line(20));
        assert_eq!(index.positions(&b), Some(&[3][..]));
        assert_eq!(index.positions(&a), Some(&[1, 2][..]));
    }
}
