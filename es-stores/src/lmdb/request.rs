//! The writes queued for the LMDB writer thread: [`Request`], and the [`Outcome`] each one
//! carries through the attempts at committing its batch, typed by what its answer needs.

use chrono::{DateTime, Utc};
use es_core::store::{AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId};
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
        reply: Reply<AppendResult>,
        outcome: Outcome<Appended>,
    },
    /// Put one key/value (snapshots and checkpoints).
    Put {
        target: Target,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Reply<()>,
        outcome: Outcome<()>,
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
            Request::Put {
                outcome: $outcome, ..
            } => $body,
            Request::Prune {
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
        reply: Reply<AppendResult>,
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

    /// About how many bytes the request writes.
    pub(super) fn size(&self) -> usize {
        match self {
            Request::Append { events, .. } => events
                .iter()
                .map(|e| e.payload.len() + e.event_type.len() + 64 + 64 * e.metadata.len())
                .sum(),
            Request::Put { key, value, .. } => key.len() + value.len(),
            Request::Prune { .. } => 64,
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
    /// need its answer).
    pub(super) fn answer(self) {
        match self {
            Request::Append {
                stream,
                events,
                reply,
                outcome,
                ..
            } => {
                let result = outcome.into_result().map(|at| {
                    AppendResult::recorded(
                        &stream,
                        at.version_before,
                        at.first_position..,
                        at.timestamp,
                        events,
                    )
                });
                let _ = reply.send(result);
            }
            Request::Put { reply, outcome, .. } | Request::Prune { reply, outcome, .. } => {
                let _ = reply.send(outcome.into_result());
            }
        }
    }
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
