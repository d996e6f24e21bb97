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
use std::sync::Arc;

use chrono::Utc;
use es_core::store::{AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId};
use tokio::sync::oneshot;

use super::State;
use super::format::{EventHeader, StreamField, format_timestamp, write_record};
use super::index::Line;
use crate::group_commit::Committer;

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

/// A request checked and encoded, waiting for the group's fsync.
struct Planned {
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    outcome: Result<Accepted, StoreError>,
}

/// An accepted append: its stream, the lines it added (offsets relative to the group buffer)
/// and its answer.
struct Accepted {
    stream: StreamId,
    lines: Vec<Line>,
    result: AppendResult,
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
        }
    }
}

impl Committer for LogWriter {
    type Request = AppendRequest;

    fn size(request: &AppendRequest) -> usize {
        request
            .events
            .iter()
            .map(|e| e.payload.len() + e.event_type.len() + 128 + 64 * e.metadata.len())
            .sum()
    }

    fn commit(&mut self, group: Vec<AppendRequest>) {
        if let Some(failed) = &self.failed {
            for request in group {
                let _ = request.reply.send(Err(failed.clone()));
            }
            return;
        }
        self.buf.clear();
        let requests = group.len();
        let planned = self.plan(group);
        let events: usize = planned
            .iter()
            .filter_map(|p| p.outcome.as_ref().ok())
            .map(|a| a.lines.len())
            .sum();

        if let Err(error) = self.write_durably() {
            for p in planned {
                let _ = p.reply.send(Err(error.clone()));
            }
            return;
        }

        let base = self.len;
        let mut index = self.state.index.write();
        let mut replies = Vec::with_capacity(planned.len());
        for p in planned {
            let outcome = p.outcome.map(|accepted| {
                for line in accepted.lines {
                    index.push(
                        &accepted.stream,
                        Line {
                            offset: base + line.offset,
                            len: line.len,
                        },
                    );
                }
                accepted.result
            });
            replies.push((p.reply, outcome));
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
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
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
    fn plan(&mut self, group: Vec<AppendRequest>) -> Vec<Planned> {
        let state = Arc::clone(&self.state);
        let index = state.index.read();
        let mut next_position = index.head() + 1;
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let mut planned = Vec::with_capacity(group.len());
        for request in group {
            let current = versions
                .get(&request.stream)
                .copied()
                .unwrap_or_else(|| index.version(&request.stream));
            let outcome = match request.expected.check(current) {
                Err(conflict) => Err(conflict),
                Ok(()) if request.events.is_empty() => Ok(Accepted {
                    stream: request.stream,
                    lines: Vec::new(),
                    result: AppendResult::unchanged(current),
                }),
                Ok(()) => {
                    let accepted =
                        self.encode(request.stream, current, next_position, request.events);
                    if let Ok(a) = &accepted {
                        next_position += a.lines.len() as u64;
                        versions.insert(a.stream.clone(), a.result.version);
                    }
                    accepted
                }
            };
            planned.push(Planned {
                reply: request.reply,
                outcome,
            });
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
        events: Vec<NewEvent>,
    ) -> Result<Accepted, StoreError> {
        let start = self.buf.len();
        let timestamp = Utc::now();
        let stamp = format_timestamp(&timestamp);
        let count = events.len() as u64;
        let mut lines = Vec::with_capacity(events.len());
        for (i, event) in (0u64..).zip(&events) {
            let line_start = self.buf.len();
            // A timestamp the event carries is kept; the others share the store's.
            let own_stamp = event.timestamp.as_ref().map(format_timestamp);
            let header = EventHeader {
                position: first_position + i,
                stream: StreamField::of(&stream),
                sequence: version + 1 + i,
                event_type: &event.event_type,
                version: event.event_version,
                timestamp: own_stamp.as_deref().unwrap_or(&stamp),
                command_id: event.command_id.as_deref(),
                correlation_id: event.correlation_id.as_deref(),
                causation_id: event.causation_id.as_deref(),
                tags: &event.tags,
                metadata: &event.metadata,
                batch_size: (i == 0 && count > 1).then_some(count),
            };
            if let Err(e) = write_record(&mut self.buf, &header, "payload", Some(&event.payload)) {
                self.buf.truncate(start);
                return Err(StoreError::InvalidInput(format!(
                    "event {i} of the append cannot be encoded: {e}"
                )));
            }
            self.buf.push(b'\n');
            lines.push(Line {
                offset: line_start as u64,
                len: (self.buf.len() - line_start) as u64,
            });
        }
        let result = AppendResult::recorded(&stream, version, first_position.., timestamp, events);
        Ok(Accepted {
            stream,
            lines,
            result,
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
