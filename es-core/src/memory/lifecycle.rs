//! Removing events from the memory store: a removed event keeps its slot in the global log
//! (positions never move) with its payload freed and a flag that reads skip.

use std::collections::HashMap;

use chrono::Utc;

use super::{Log, REMOVED};
use crate::store::{StoreError, StreamId, lifecycle::Truncation};

/// The removals recorded so far, by stream.
pub(super) type Truncations = HashMap<StreamId, Truncation, foldhash::fast::RandomState>;

impl Log {
    /// Removes the events of `stream` below sequence `before` (see
    /// `EventStore::truncate_stream`); how many were removed.
    pub(super) fn truncate(&mut self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        let version = self.version(stream);
        if before > version {
            return Err(StoreError::InvalidInput(format!(
                "cannot remove the events of {stream} before sequence {before}: its version is \
                 {version}, and its last event is always kept"
            )));
        }
        let Some(index) = self.index.get_mut(stream) else {
            return Ok(0);
        };
        // Sequences are gapless from 1: event `s` is at `index.events[s - 1]`.
        let end = usize::try_from(before.saturating_sub(1)).unwrap_or(usize::MAX);
        let from = index.removed.min(end);
        let doomed: Vec<u32> = index.events[from..end].to_vec();
        index.removed = index.removed.max(end);
        for i in &doomed {
            let e = &mut self.events[*i as usize];
            e.same |= REMOVED;
            e.payload = Box::default();
            e.extra = None;
        }
        if !doomed.is_empty() {
            self.truncations.insert(
                stream.clone(),
                Truncation {
                    stream: stream.clone(),
                    before,
                    at: Utc::now(),
                },
            );
        }
        Ok(doomed.len() as u64)
    }

    /// Whether the event at `index` of the global log was removed.
    pub(super) fn is_removed(&self, index: usize) -> bool {
        self.events[index].same & REMOVED != 0
    }

    /// The indexes of up to `limit` kept events from `start` on, skipping removed ones (which
    /// count for nothing, so a reader never stops at a hole).
    pub(super) fn live(&self, start: usize, limit: usize) -> impl Iterator<Item = usize> + '_ {
        (start.min(self.events.len())..self.events.len())
            .filter(|&i| !self.is_removed(i))
            .take(limit)
    }
}
