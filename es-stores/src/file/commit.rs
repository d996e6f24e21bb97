//! The commit step of the file store's group commit: one thread owns the log file and appends
//! everyone's events.
//!
//! The shared writer thread ([`crate::group_commit`]) hands [`LogWriter::commit`] a group of
//! [`AppendRequest`]s. It checks each request's expected version against the committed stream
//! heads plus the requests before it in the group, encodes the accepted events into one buffer,
//! writes it with one `write` and makes it durable with one `sync_data`, then publishes the new
//! events in the index, moves the head watch and answers every request. A failed write is
//! undone by truncating the log to its committed length.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use es_core::store::{
    AppendResult, BatchAppend, BatchOutcome, ExpectedVersion, NewEvent, StoreError, StreamId,
};
use tokio::sync::oneshot;

use super::format::{
    EventHeader, StreamField, format_timestamp, format_timestamp_into, write_record,
};
use super::index::Line;
use super::state::State;
use crate::group_commit::Committer;

/// Stream versions as the requests planned so far in a group leave them: by stream number
/// (see [`super::index`]) for the streams the index has, by stream id for new ones.
#[derive(Default)]
struct Versions {
    known: HashMap<u32, u64, foldhash::fast::RandomState>,
    new: HashMap<StreamId, u64, foldhash::fast::RandomState>,
}

impl Versions {
    /// Records that an append left its stream (numbered `number` in the index, or new) at
    /// `version`.
    fn set(&mut self, number: Option<u32>, stream: &StreamId, version: u64) {
        match number {
            Some(n) => {
                self.known.insert(n, version);
            }
            None => match self.new.get_mut(stream) {
                Some(v) => *v = version,
                None => {
                    self.new.insert(stream.clone(), version);
                }
            },
        }
    }
}

/// The write buffer's starting capacity.
const INITIAL_BUFFER: usize = 64 * 1024;
/// A write buffer grown beyond this by a large group is released after it.
const MAX_KEPT_BUFFER: usize = 16 << 20;

/// One caller's append, with the channel its answer goes to.
pub(super) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// What the writer thread is sent: one append, or a batch of them (`append_many`) written
/// with the same single write and flush as a group.
pub(super) enum WriteRequest {
    /// One append.
    One(AppendRequest),
    /// A batch of appends, decided in order; an encoding failure fails the whole batch.
    Many {
        batch: Vec<BatchAppend>,
        reply: oneshot::Sender<Result<BatchOutcome, StoreError>>,
    },
}

/// A request checked and encoded, waiting for the group's fsync.
enum Planned {
    One {
        reply: oneshot::Sender<Result<AppendResult, StoreError>>,
        outcome: Result<Accepted, StoreError>,
    },
    Many {
        reply: oneshot::Sender<Result<BatchOutcome, StoreError>>,
        outcome: Result<Vec<Result<Accepted, StoreError>>, StoreError>,
    },
}

impl Planned {
    /// The appends it accepted.
    fn accepted(&self) -> Vec<&Accepted> {
        match self {
            Planned::One { outcome, .. } => outcome.iter().collect(),
            Planned::Many { outcome, .. } => outcome.iter().flatten().flatten().collect(),
        }
    }

    /// Answers with `error` (the group's write failed).
    fn fail(self, error: &StoreError) {
        match self {
            Planned::One { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
            Planned::Many { reply, .. } => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// An accepted append: the lines it added (a range of [`LogWriter::lines`]) and its answer,
/// whose events carry the stream.
struct Accepted {
    lines: Range<usize>,
    /// The stream's number in the index (`None`: a stream new in this group).
    number: Option<u32>,
    result: AppendResult,
}

impl Accepted {
    /// The stream it appended to, when it appended events.
    fn stream(&self) -> Option<&StreamId> {
        self.result.events.first().map(|e| &e.stream)
    }
}

/// An answer to send once the group is durable.
enum Reply {
    One(
        oneshot::Sender<Result<AppendResult, StoreError>>,
        Result<AppendResult, StoreError>,
    ),
    Many(
        oneshot::Sender<Result<BatchOutcome, StoreError>>,
        Result<BatchOutcome, StoreError>,
    ),
}

/// The owner of the log file's write handle.
pub(super) struct LogWriter {
    state: Arc<State>,
    file: File,
    /// Length of the log's committed prefix (everything in the index).
    len: u64,
    /// Set when a failed append could not be undone: the file's tail is unknown, so no further
    /// append is accepted until the store is reopened (and recovery runs).
    failed: Option<StoreError>,
    buf: Vec<u8>,
    /// The lines of the group's accepted events (offsets relative to `buf`), in order.
    lines: Vec<Line>,
    /// The last event timestamp formatted, and its text (reused from event to event: the
    /// events of one command often share their timestamp).
    stamped: Option<DateTime<Utc>>,
    stamp: String,
}

impl LogWriter {
    /// A writer appending to `file`, whose committed length is `len`.
    pub(super) fn new(state: Arc<State>, file: File, len: u64) -> Self {
        Self {
            state,
            file,
            len,
            failed: None,
            buf: Vec::with_capacity(INITIAL_BUFFER),
            lines: Vec::new(),
            stamped: None,
            stamp: String::with_capacity(40),
        }
    }
}

/// About how many bytes `events` take in the log.
fn events_size(events: &[NewEvent]) -> usize {
    events
        .iter()
        .map(|e| e.payload.len() + e.event_type.len() + 128 + 64 * e.envelope.metadata.len())
        .sum()
}

impl Committer for LogWriter {
    type Request = WriteRequest;

    fn size(request: &WriteRequest) -> usize {
        match request {
            WriteRequest::One(request) => events_size(&request.events),
            WriteRequest::Many { batch, .. } => batch.iter().map(|a| events_size(&a.events)).sum(),
        }
    }

    fn commit(&mut self, group: Vec<WriteRequest>) {
        if let Some(failed) = &self.failed {
            for request in group {
                match request {
                    WriteRequest::One(request) => {
                        let _ = request.reply.send(Err(failed.clone()));
                    }
                    WriteRequest::Many { reply, .. } => {
                        let _ = reply.send(Err(failed.clone()));
                    }
                }
            }
            return;
        }
        self.buf.clear();
        self.lines.clear();
        let requests = group.len();
        let planned = self.plan(group);
        let events = self.lines.len();

        if let Err(error) = self.write_durably() {
            for p in planned {
                p.fail(&error);
            }
            return;
        }

        let base = self.len;
        let lines = &self.lines;
        let mut index = self.state.index.write();
        let mut publish = |accepted: Accepted| {
            if let (Some(stream), Some(added)) =
                (accepted.stream(), lines.get(accepted.lines.clone()))
            {
                let added = added.iter().map(|line| Line {
                    offset: base + line.offset,
                    len: line.len,
                });
                match accepted.number {
                    Some(number) => index.push_numbered(number, added),
                    None => index.push_run(stream, added),
                }
            }
            accepted.result
        };
        let mut replies = Vec::with_capacity(planned.len());
        for p in planned {
            replies.push(match p {
                Planned::One { reply, outcome } => Reply::One(reply, outcome.map(&mut publish)),
                Planned::Many { reply, outcome } => Reply::Many(
                    reply,
                    outcome.map(|outcomes| {
                        outcomes.into_iter().map(|o| o.map(&mut publish)).collect()
                    }),
                ),
            });
        }
        let head = index.head();
        drop(index);
        self.len += self.buf.len() as u64;
        if events > 0 {
            self.state.head.send_replace(head);
        }
        tracing::trace!(
            requests,
            events,
            bytes = self.buf.len(),
            head,
            "group committed"
        );
        for reply in replies {
            match reply {
                Reply::One(reply, outcome) => {
                    let _ = reply.send(outcome);
                }
                Reply::Many(reply, outcome) => {
                    let _ = reply.send(outcome);
                }
            }
        }
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            // Do not keep the memory of one huge group for the life of the store.
            self.buf = Vec::with_capacity(INITIAL_BUFFER);
        }
    }

    /// Reports a log left unusable by a failed append that could not be undone.
    fn finish(self) -> Result<(), StoreError> {
        tracing::debug!(dir = %self.state.dir.display(), "file store writer stopped");
        match self.failed {
            Some(failed) => Err(failed),
            None => Ok(()),
        }
    }
}

impl LogWriter {
    /// Checks and encodes every request of the group into `self.buf`, in order; requests see
    /// the effect of the accepted ones before them.
    fn plan(&mut self, group: Vec<WriteRequest>) -> Vec<Planned> {
        let state = Arc::clone(&self.state);
        let index = state.index.read();
        let mut next_position = index.head() + 1;
        let mut versions: Versions = Versions::default();
        let mut planned = Vec::with_capacity(group.len());
        // The store's time for the events that carry none: one per group (one commit).
        let now = Utc::now();
        let now_stamp = format_timestamp(&now);
        let store_time = (now, now_stamp.as_str());
        let decide = |writer: &mut LogWriter,
                      versions: &mut Versions,
                      next_position: &mut u64,
                      stream: StreamId,
                      expected: ExpectedVersion,
                      events: Vec<NewEvent>| {
            // One lookup of the stream id (in the index); then its number.
            let number = index.number(&stream);
            let current = match number {
                Some(n) => versions
                    .known
                    .get(&n)
                    .copied()
                    .unwrap_or_else(|| index.version_of(n)),
                None => versions.new.get(&stream).copied().unwrap_or(0),
            };
            match expected.check(current) {
                Err(conflict) => Err(conflict),
                Ok(()) if events.is_empty() => Ok(Accepted {
                    lines: 0..0,
                    number,
                    result: AppendResult::unchanged(current),
                }),
                Ok(()) => {
                    let accepted =
                        writer.encode(stream, current, *next_position, store_time, events);
                    if let Ok(a) = &accepted {
                        *next_position += a.lines.len() as u64;
                        if let Some(stream) = a.stream() {
                            versions.set(number, stream, a.result.version);
                        }
                    }
                    accepted.map(|a| Accepted { number, ..a })
                }
            }
        };
        for request in group {
            match request {
                WriteRequest::One(request) => {
                    let outcome = decide(
                        self,
                        &mut versions,
                        &mut next_position,
                        request.stream,
                        request.expected,
                        request.events,
                    );
                    planned.push(Planned::One {
                        reply: request.reply,
                        outcome,
                    });
                }
                WriteRequest::Many { batch, reply } => {
                    // Undone as a whole when one of its appends cannot be encoded.
                    let (buf_start, lines_start, position_start) =
                        (self.buf.len(), self.lines.len(), next_position);
                    let mut outcomes = Vec::with_capacity(batch.len());
                    let mut failed = None;
                    for append in batch {
                        match decide(
                            self,
                            &mut versions,
                            &mut next_position,
                            append.stream,
                            append.expected,
                            append.events,
                        ) {
                            Err(error) if !matches!(error, StoreError::Conflict { .. }) => {
                                failed = Some(error);
                                break;
                            }
                            outcome => outcomes.push(outcome),
                        }
                    }
                    let outcome = match failed {
                        None => Ok(outcomes),
                        Some(error) => {
                            self.buf.truncate(buf_start);
                            self.lines.truncate(lines_start);
                            next_position = position_start;
                            // The versions as the requests before this one left them.
                            versions = Versions::default();
                            for a in planned.iter().flat_map(Planned::accepted) {
                                if let Some(stream) = a.stream() {
                                    versions.set(a.number, stream, a.result.version);
                                }
                            }
                            Err(error)
                        }
                    };
                    planned.push(Planned::Many { reply, outcome });
                }
            }
        }
        planned
    }

    /// Encodes one append's events as lines at the end of `self.buf`; on failure `self.buf`
    /// is left as it was.
    fn encode(
        &mut self,
        stream: StreamId,
        version: u64,
        first_position: u64,
        (now, now_stamp): (DateTime<Utc>, &str),
        events: Vec<NewEvent>,
    ) -> Result<Accepted, StoreError> {
        let start = self.buf.len();
        let lines_start = self.lines.len();
        let count = events.len() as u64;
        for (i, event) in (0u64..).zip(&events) {
            let line_start = self.buf.len();
            // A timestamp the event carries is kept; the others get the store's.
            let timestamp = match &event.timestamp {
                Some(t) => {
                    if self.stamped != Some(*t) {
                        format_timestamp_into(&mut self.stamp, t);
                        self.stamped = Some(*t);
                    }
                    self.stamp.as_str()
                }
                None => now_stamp,
            };
            let header = EventHeader {
                position: first_position + i,
                stream: StreamField::of(&stream),
                sequence: version + 1 + i,
                event_type: &event.event_type,
                version: event.event_version,
                timestamp,
                command_id: event.envelope.command_id.as_deref(),
                correlation_id: event.envelope.correlation_id.as_deref(),
                causation_id: event.envelope.causation_id.as_deref(),
                tags: &event.envelope.tags,
                metadata: &event.envelope.metadata,
                batch_size: (i == 0 && count > 1).then_some(count),
            };
            if let Err(e) = write_record(&mut self.buf, &header, "payload", Some(&event.payload)) {
                self.buf.truncate(start);
                self.lines.truncate(lines_start);
                return Err(StoreError::InvalidInput(format!(
                    "event {i} of the append cannot be encoded: {e}"
                )));
            }
            self.buf.push(b'\n');
            self.lines.push(Line {
                offset: line_start as u64,
                len: (self.buf.len() - line_start) as u64,
            });
        }
        Ok(Accepted {
            lines: lines_start..self.lines.len(),
            number: None,
            result: AppendResult::recorded_owned(stream, version, first_position.., now, events),
        })
    }

    /// Writes `self.buf` at the end of the log and fsyncs it. On failure the log is truncated
    /// back to its committed length, so nothing of the group remains; if even that fails the
    /// writer refuses further appends and the answer is [`StoreError::Indeterminate`].
    fn write_durably(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = &self.state.events_path;
        let Err(e) = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data())
        else {
            return Ok(());
        };
        let error = StoreError::io(format!("appending to {}", path.display()), e);
        tracing::error!(file = %path.display(), %error, "append failed; undoing the partial write");
        match self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all())
        {
            Ok(()) => Err(error),
            Err(undo) => {
                let failed = StoreError::io(
                    format!(
                        "{} could not be restored after a failed append ({error}); reopen the store",
                        path.display()
                    ),
                    undo,
                );
                tracing::error!(file = %path.display(), error = %failed, "the event log is unusable until reopened");
                self.failed = Some(failed);
                Err(StoreError::Indeterminate(format!(
                    "appending to {} failed and could not be undone: {error}",
                    path.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's answer ([`AppendResult::recorded_owned`]) is the one every backend builds
    /// with [`AppendResult::recorded`]: no event, one, several, with and without their own
    /// timestamps.
    #[test]
    fn answers_are_what_append_result_recorded_makes() {
        let stream = StreamId::new("bank_account", "acc-1");
        let now = Utc::now();
        let own = DateTime::from_timestamp(1_000_000_000, 5).unwrap_or(now);
        for count in [0, 1, 3] {
            let events: Vec<NewEvent> = (0..count)
                .map(|i| {
                    let event =
                        NewEvent::new("E", format!("{{\"i\":{i}}}").into_bytes()).metadata("i", i);
                    if i % 2 == 0 {
                        event.timestamp(own)
                    } else {
                        event
                    }
                })
                .collect();
            let want = AppendResult::recorded(&stream, 4, 10.., now, events.clone());
            let got = AppendResult::recorded_owned(stream.clone(), 4, 10.., now, events);
            assert_eq!(got, want, "{count} events");
        }
    }
}
