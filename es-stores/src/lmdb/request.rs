//! The writes queued for the LMDB writer thread: [`Request`], and the [`Outcome`] each one
//! carries through the attempts at committing its batch, typed by what its answer needs.

use chrono::{DateTime, Utc};
use es_core::store::{AppendResult, BatchOutcome, ExpectedVersion, NewEvent, StoreError, StreamId};
use tokio::sync::oneshot;

/// The answer channel of a request.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write, sent to the writer thread, with what applying it decided so far.
pub(super) enum Request {
    /// Append events to a stream.
    Append {
        stream: StreamId,
        key: Vec<u8>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: Reply<AppendDone>,
        outcome: Outcome<Appended>,
    },
    /// Append a batch of appends in one transaction (`EventStore::append_many`). `outcome` is
    /// `Applied` once every item is decided (each item keeps its own decision); a failure
    /// while writing any item rejects the whole request.
    AppendMany {
        items: Vec<BatchItem>,
        reply: Reply<Vec<BatchItem>>,
        outcome: Outcome<()>,
    },
    /// Put one key/value (snapshots and checkpoints).
    Put {
        target: Target,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Reply<()>,
        outcome: Outcome<()>,
    },
    /// Remove the events of a stream below a sequence (`EventStore::truncate_stream`).
    Truncate {
        stream: StreamId,
        key: Vec<u8>,
        before: u64,
        reply: Reply<u64>,
        outcome: Outcome<u64>,
    },
    /// Delete all but the `keep_last` newest snapshots under `prefix`.
    Prune {
        prefix: Vec<u8>,
        keep_last: usize,
        reply: Reply<()>,
        outcome: Outcome<()>,
    },
}

/// Runs `$body` on the outcome of any kind of request.
macro_rules! with_outcome {
    ($request:expr, $outcome:ident => $body:expr) => {
        match $request {
            Request::Append {
                outcome: $outcome, ..
            } => $body,
            Request::AppendMany {
                outcome: $outcome, ..
            } => $body,
            Request::Put {
                outcome: $outcome, ..
            } => $body,
            Request::Prune {
                outcome: $outcome, ..
            } => $body,
            Request::Truncate {
                outcome: $outcome, ..
            } => $body,
        }
    };
}

impl Request {
    /// An append of `events` to `stream` (whose key is `key`).
    pub(super) fn append(
        stream: StreamId,
        key: Vec<u8>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: Reply<AppendDone>,
    ) -> Self {
        Request::Append {
            stream,
            key,
            expected,
            events,
            reply,
            outcome: Outcome::Pending,
        }
    }

    /// A batch of appends, applied in order in one transaction.
    pub(super) fn append_many(items: Vec<BatchItem>, reply: Reply<Vec<BatchItem>>) -> Self {
        Request::AppendMany {
            items,
            reply,
            outcome: Outcome::Pending,
        }
    }

    /// A put of `value` under `key` in `target`.
    pub(super) fn put(target: Target, key: Vec<u8>, value: Vec<u8>, reply: Reply<()>) -> Self {
        Request::Put {
            target,
            key,
            value,
            reply,
            outcome: Outcome::Pending,
        }
    }

    /// A prune of the snapshots under `prefix` down to the `keep_last` newest.
    pub(super) fn prune(prefix: Vec<u8>, keep_last: usize, reply: Reply<()>) -> Self {
        Request::Prune {
            prefix,
            keep_last,
            reply,
            outcome: Outcome::Pending,
        }
    }

    /// A removal of the events of `stream` (keyed `key`) below sequence `before`.
    pub(super) fn truncate(stream: StreamId, key: Vec<u8>, before: u64, reply: Reply<u64>) -> Self {
        Request::Truncate {
            stream,
            key,
            before,
            reply,
            outcome: Outcome::Pending,
        }
    }

    /// About how many bytes the request writes.
    pub(super) fn size(&self) -> usize {
        match self {
            Request::Append { events, .. } => events
                .iter()
                .map(|e| e.payload.len() + e.event_type.len() + 64 + 64 * e.envelope.metadata.len())
                .sum(),
            Request::AppendMany { items, .. } => items
                .iter()
                .flat_map(|item| &item.events)
                .map(|e| e.payload.len() + e.event_type.len() + 64 + 64 * e.envelope.metadata.len())
                .sum(),
            Request::Put { key, value, .. } => key.len() + value.len(),
            Request::Prune { .. } | Request::Truncate { .. } => 64,
        }
    }

    pub(super) fn is_excluded(&self) -> bool {
        with_outcome!(self, outcome => matches!(outcome, Outcome::Excluded(_)))
    }

    /// Forgets what a failed attempt decided (not exclusions).
    pub(super) fn reset(&mut self) {
        with_outcome!(self, outcome => {
            if !matches!(outcome, Outcome::Excluded(_)) {
                *outcome = Outcome::Pending;
            }
        });
    }

    /// Rejects the request in this attempt.
    pub(super) fn reject(&mut self, error: StoreError) {
        with_outcome!(self, outcome => *outcome = Outcome::Rejected(error));
    }

    /// After a failed attempt: a request that failed for a reason other than a conflict is
    /// left out of the replays. (A conflict is decided anew: the batch may change.)
    pub(super) fn exclude_if_failed(&mut self) {
        with_outcome!(self, outcome => {
            if let Outcome::Rejected(error) = outcome
                && !matches!(error, StoreError::Conflict { .. })
            {
                *outcome = Outcome::Excluded(error.clone());
            }
        });
    }

    /// Sends the answer: the outcome, which must be decided (a caller that went away does not
    /// need its answer). The caller turns it into records ([`AppendDone::into_result`],
    /// [`batch_outcome`]), so that the writer thread does not spend its time on them.
    pub(super) fn answer(self) {
        match self {
            Request::Append {
                stream,
                events,
                reply,
                outcome,
                ..
            } => {
                let _ =
                    reply.send(
                        outcome
                            .into_result()
                            .map(|at| AppendDone { stream, events, at }),
                    );
            }
            Request::AppendMany {
                items,
                reply,
                outcome,
            } => {
                let _ = reply.send(outcome.into_result().map(|()| items));
            }
            Request::Put { reply, outcome, .. } | Request::Prune { reply, outcome, .. } => {
                let _ = reply.send(outcome.into_result());
            }
            Request::Truncate { reply, outcome, .. } => {
                let _ = reply.send(outcome.into_result());
            }
        }
    }
}

/// The writer's answer to an accepted append.
pub(super) struct AppendDone {
    stream: StreamId,
    events: Vec<NewEvent>,
    at: Appended,
}

impl AppendDone {
    /// The records of the appended events (see [`AppendResult::recorded_owned`]: the last one
    /// takes the request's stream id instead of a copy).
    pub(super) fn into_result(self) -> AppendResult {
        AppendResult::recorded_owned(
            self.stream,
            self.at.version_before,
            self.at.first_position..,
            self.at.timestamp,
            self.events,
        )
    }
}

/// The outcome of each append of an applied [`Request::AppendMany`], from its items.
pub(super) fn batch_outcome(items: Vec<BatchItem>) -> BatchOutcome {
    items
        .into_iter()
        .map(|item| {
            let decided = item
                .decided
                .unwrap_or_else(|| unreachable!("an applied batch decides every item"));
            decided.map(|at| {
                AppendResult::recorded_owned(
                    item.stream,
                    at.version_before,
                    at.first_position..,
                    at.timestamp,
                    item.events,
                )
            })
        })
        .collect()
}

/// One append of an [`Request::AppendMany`], with its decision in the current attempt.
pub(super) struct BatchItem {
    pub(super) stream: StreamId,
    pub(super) key: Vec<u8>,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<NewEvent>,
    /// `None` until applied in an attempt; a conflict is `Some(Err(..))`.
    pub(super) decided: Option<Result<Appended, StoreError>>,
}

/// Where an append went: the stream was at `version_before`, the first event got
/// `first_position`, and the events that carry no timestamp of their own got `timestamp`.
pub(super) struct Appended {
    pub(super) version_before: u64,
    pub(super) first_position: u64,
    pub(super) timestamp: DateTime<Utc>,
}

/// What applying one request decided.
pub(super) enum Outcome<T> {
    /// Not applied (yet) in this attempt.
    Pending,
    /// Applied; `T` is what the answer needs.
    Applied(T),
    /// Decided against (nothing written) in this attempt.
    Rejected(StoreError),
    /// Failed while writing: left out of every further attempt at this batch.
    Excluded(StoreError),
}

impl<T> Outcome<T> {
    fn into_result(self) -> Result<T, StoreError> {
        match self {
            Outcome::Applied(value) => Ok(value),
            Outcome::Rejected(error) | Outcome::Excluded(error) => Err(error),
            Outcome::Pending => unreachable!(
                "a committed attempt applies or rejects every request it does not exclude, \
                 and a failed batch rejects them all"
            ),
        }
    }
}

/// Which database a [`Request::Put`] writes to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Snapshots,
    Checkpoints,
}
