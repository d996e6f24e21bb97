//! The checks of the log, met event by event in log order, and the findings they collect.

use std::collections::HashMap;

use es_core::store::{Metadata, RecordedEvent, StreamId};
use serde::Serialize;

/// One problem found.
#[derive(Debug, Serialize)]
pub(crate) struct Finding {
    /// Where: a position, a stream, a file line, a projection.
    pub(crate) location: String,
    /// What is wrong.
    pub(crate) problem: String,
}

/// The most findings listed; the rest are counted.
const MAX_LISTED: usize = 1000;

/// Collects findings and the per-stream state of the log checks.
#[derive(Default)]
pub(super) struct Checker {
    /// The findings listed, at most [`MAX_LISTED`].
    pub(super) findings: Vec<Finding>,
    /// How many more were found.
    pub(super) unlisted: u64,
    /// Per stream: the last sequence seen.
    pub(super) streams: HashMap<StreamId, u64, foldhash::fast::RandomState>,
    /// The highest position seen.
    pub(super) last_position: u64,
    /// How many events were checked.
    pub(super) events: u64,
    /// Per stream: the sequence before which its events were removed on purpose
    /// (`EventStore::truncations`), so a stream may start there instead of at 1.
    pub(super) truncated: HashMap<StreamId, u64, foldhash::fast::RandomState>,
}

/// Whether the metadata declares a payload that is not JSON (`content_type` without `json`).
pub(super) fn declared_binary(metadata: &Metadata) -> bool {
    ["content_type", "content-type"].iter().any(|key| {
        metadata
            .get(*key)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|v| !v.to_ascii_lowercase().contains("json"))
    })
}

impl Checker {
    /// Records a problem found at `location`.
    pub(super) fn find(&mut self, location: impl Into<String>, problem: impl Into<String>) {
        if self.findings.len() < MAX_LISTED {
            self.findings.push(Finding {
                location: location.into(),
                problem: problem.into(),
            });
        } else {
            self.unlisted += 1;
        }
    }

    /// Checks one event of the log, met in log order. `at` says where it is, for reports.
    pub(super) fn event(
        &mut self,
        at: impl Fn() -> String,
        position: u64,
        stream: &StreamId,
        sequence: u64,
        payload_is_json: impl FnOnce() -> bool,
        declared_binary: impl FnOnce() -> bool,
    ) {
        self.events += 1;
        if position <= self.last_position {
            self.find(
                at(),
                format!(
                    "position {position} does not increase (after {})",
                    self.last_position
                ),
            );
        }
        self.last_position = self.last_position.max(position);
        // One lookup per event (the stream id is cloned only the first time it is met).
        let last = match self.streams.get_mut(stream) {
            Some(v) => {
                let last = *v;
                *v = last.max(sequence);
                last
            }
            None => {
                self.streams.insert(stream.clone(), sequence);
                // Up to the recorded removal, a stream may start anywhere (a store that
                // records first and removes after may still hold some of the events).
                match self.truncated.get(stream) {
                    Some(&before) => sequence.min(before).saturating_sub(1),
                    None => 0,
                }
            }
        };
        if sequence != last + 1 {
            let problem = if sequence <= last {
                format!("stream {stream}: sequence {sequence} repeats or goes back (after {last})")
            } else {
                format!(
                    "stream {stream}: sequence {sequence} after {last}, sequences {}..{} are missing",
                    last + 1,
                    sequence - 1
                )
            };
            self.find(at(), problem);
        }
        if !payload_is_json() && !declared_binary() {
            self.find(
                at(),
                format!(
                    "stream {stream}#{sequence}: the payload is not valid JSON and its metadata \
                     declares no binary content_type"
                ),
            );
        }
    }

    /// The last sequence seen of `stream` (0 when none).
    #[cfg(feature = "file")]
    pub(super) fn stream_version(&self, stream: &StreamId) -> u64 {
        self.streams.get(stream).copied().unwrap_or(0)
    }

    /// Takes the removals a store recorded: the sequences before them are not missing.
    pub(super) fn removals(&mut self, removals: impl IntoIterator<Item = (StreamId, u64)>) {
        self.truncated.extend(removals);
    }

    /// Checks one event read through the store traits.
    pub(super) fn recorded(&mut self, e: &RecordedEvent) {
        self.event(
            || format!("position {}", e.position),
            e.position,
            &e.stream,
            e.sequence,
            || serde_json::from_slice::<serde::de::IgnoredAny>(&e.payload).is_ok(),
            || declared_binary(&e.metadata),
        );
    }
}
