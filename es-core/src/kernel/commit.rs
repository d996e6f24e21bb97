//! Committing a group of commands: decide them, append their events in one `append` at the
//! version the state was at, then answer each command.
//!
//! A version conflict (another writer moved the stream) reloads the state and re-runs the
//! group, which is why commands are `Clone`; a store that reports itself unavailable is retried
//! with backoff; any other failure is reported to every command of the group, and nothing of it
//! is applied.

use std::time::{Duration, Instant};

use crate::aggregate::Aggregate;
use crate::metrics::AggregateMetrics;
use crate::store::{AppendResult, ExpectedVersion, RecordedEvent, StoreError, StreamId};

use super::context::Context;
use super::decide::{Decided, Outcome, decide};
use super::load::{LoadError, loaded};
use super::message::Job;
use super::snapshot::maybe_snapshot;
use super::{Committed, DispatchError};

/// What the actor does after a commit.
pub(crate) enum AfterCommit {
    Continue,
    /// A panic left the state unknown: the actor must stop (the next command rehydrates).
    Stop,
}

/// Decides, commits and answers `jobs` against the cached state (see the module docs).
///
/// `cache` is emptied whenever it may be out of step with the store.
pub(crate) async fn commit<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    cache: &mut Option<(A, u64)>,
    jobs: Vec<Job<A>>,
    metrics: &AggregateMetrics,
) -> AfterCommit {
    if jobs.is_empty() {
        return AfterCommit::Continue;
    }
    let started = Instant::now();
    metrics.batch_started(jobs.len());
    let mut conflicts = 0;
    let mut transient = 0;
    loop {
        let (state, version) = match loaded(ctx, stream, cache, metrics).await {
            Ok(loaded) => loaded,
            Err(LoadError::Store(e)) => {
                answer_all(jobs, || DispatchError::Store(e.clone()));
                return AfterCommit::Continue;
            }
            Err(LoadError::Panicked(m)) => {
                // Rehydration itself panicked: no command of the group can run.
                answer_all(jobs, || DispatchError::Panicked(m.clone()));
                return AfterCommit::Stop;
            }
        };
        let base = *version;
        let commands = jobs.iter().map(|j| (&j.command, j.options.as_deref()));
        let (events, outcomes) = match decide(state, base, commands) {
            Decided::Ok { events, outcomes } => (events, outcomes),
            Decided::Panicked { index, message } => {
                *cache = None;
                for (i, job) in jobs.into_iter().enumerate() {
                    if i == index {
                        job.answer(Err(DispatchError::Panicked(message.clone())));
                    } else {
                        job.retry();
                    }
                }
                return AfterCommit::Stop;
            }
        };
        let result = if !events.is_empty() {
            ctx.event_store
                .append(stream, ExpectedVersion::Exact(base), events)
                .await
                .map(Some)
        } else if outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Rejected(_) | Outcome::Conflict { .. }))
        {
            // Rejections are only as good as the state they were decided on: make sure no
            // other writer moved the stream.
            match ctx.event_store.stream_version(stream).await {
                Ok(actual) if actual == base => Ok(None),
                Ok(actual) => Err(StoreError::Conflict {
                    expected: ExpectedVersion::Exact(base),
                    actual,
                }),
                Err(e) => Err(e),
            }
        } else {
            Ok(None)
        };
        match result {
            Ok(appended) => {
                let (new_version, recorded) = match appended {
                    Some(AppendResult { version, events }) => (version, events),
                    None => (base, Vec::new()),
                };
                *version = new_version;
                maybe_snapshot(ctx, stream, &*state, base, new_version);
                metrics.batch_done(started);
                answer(jobs, outcomes, recorded);
                return AfterCommit::Continue;
            }
            Err(StoreError::Conflict { actual, .. }) => {
                *cache = None;
                conflicts += 1;
                if conflicts > ctx.config.conflict_retries {
                    tracing::warn!(%stream, attempt = conflicts, "giving up after repeated version conflicts");
                    answer_all(jobs, || DispatchError::Conflict {
                        expected: base,
                        actual,
                    });
                    return AfterCommit::Continue;
                }
                metrics.conflict_reruns.add(1);
                tracing::debug!(%stream, base, actual, "version conflict; catching up and re-running");
            }
            Err(e) if e.is_transient() && transient < ctx.config.store_retries => {
                // The store says the write did not happen: reload and try again.
                transient += 1;
                *cache = None;
                let wait = Duration::from_millis(10u64 << transient.min(8));
                tracing::warn!(%stream, error = %e, attempt = transient, ?wait, "store unavailable; retrying the batch");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                // Nothing is acknowledged: the caller learns the write failed (or, for
                // `Indeterminate`, may not have happened), and the state is reloaded.
                tracing::warn!(%stream, error = %e, "append failed; nothing of the batch was applied");
                *cache = None;
                answer_all(jobs, || DispatchError::Store(e.clone()));
                return AfterCommit::Continue;
            }
        }
    }
}

/// Answers each job with its outcome, handing out the recorded events in order.
fn answer<A: Aggregate>(
    jobs: Vec<Job<A>>,
    outcomes: Vec<Outcome<A::Error>>,
    recorded: Vec<RecordedEvent>,
) {
    let mut recorded = recorded.into_iter();
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        job.answer(match outcome {
            Outcome::Events { count, version } => Ok(Committed {
                version,
                events: recorded.by_ref().take(count).collect(),
            }),
            Outcome::Rejected(e) => Err(DispatchError::Rejected(e)),
            Outcome::Conflict { expected, actual } => {
                Err(DispatchError::Conflict { expected, actual })
            }
            Outcome::Failed(e) => Err(DispatchError::Store(e)),
        });
    }
}

/// Answers every job with the same error.
fn answer_all<A: Aggregate>(jobs: Vec<Job<A>>, error: impl Fn() -> DispatchError<A::Error>) {
    for job in jobs {
        job.answer(Err(error()));
    }
}
