//! Committing a group of commands: decide them, append their events in one `append` at the
//! version the state was at, then answer each command.
//!
//! A version conflict (another writer moved the stream) reloads the state and re-runs the
//! group, which is why commands are `Clone`; a store that reports itself unavailable is retried
//! with backoff; any other failure is reported to every command of the group, and nothing of it
//! is applied.

use std::time::{Duration, Instant};

use super::metrics::AggregateMetrics;
use crate::aggregate::Aggregate;
use crate::store::{AppendResult, ExpectedVersion, RecordedEvent, StoreError, StreamId};

use super::context::Context;
use super::decide::{Decided, Outcome, decide};
use super::dedup::{self, Window};
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
/// `cache` is emptied whenever it may be out of step with the store; `window` is the
/// aggregate's idempotency window, built on the first explicit command id (see `dedup`). The
/// jobs go in groups: a command repeating the id of an earlier command of the batch starts the
/// next group, so it waits for that one to commit and gets its answer.
pub(crate) async fn commit<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    cache: &mut Option<(A, u64)>,
    window: &mut Option<Box<Window>>,
    mut jobs: Vec<Job<A>>,
    metrics: &AggregateMetrics,
) -> AfterCommit {
    while !jobs.is_empty() {
        if let AfterCommit::Stop =
            commit_group(ctx, stream, cache, window, &mut jobs, metrics).await
        {
            std::mem::take(&mut jobs).into_iter().for_each(Job::retry);
            return AfterCommit::Stop;
        }
    }
    AfterCommit::Continue
}

/// Commits the first group of `pending` and answers it; the jobs of later groups are left in
/// `pending`.
async fn commit_group<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    cache: &mut Option<(A, u64)>,
    window: &mut Option<Box<Window>>,
    pending: &mut Vec<Job<A>>,
    metrics: &AggregateMetrics,
) -> AfterCommit {
    let mut jobs = std::mem::take(pending);
    let started = Instant::now();
    let mut counted = false;
    let mut conflicts = 0;
    let mut transient = 0;
    loop {
        let (state, version) = match loaded(ctx, stream, cache, metrics).await {
            Ok(loaded) => loaded,
            Err(LoadError::Store(e)) => {
                answer_all(jobs, || DispatchError::Store(e.clone()));
                return AfterCommit::Continue;
            }
            Err(LoadError::Deleted) => {
                answer_all(jobs, || DispatchError::StreamDeleted {
                    stream: stream.clone(),
                });
                return AfterCommit::Continue;
            }
            Err(LoadError::Panicked(m)) => {
                // Rehydration itself panicked: no command of the group can run.
                answer_all(jobs, || DispatchError::Panicked(m.clone()));
                return AfterCommit::Stop;
            }
        };
        let base = *version;
        // Idempotency, in one step: repeats are split off or answered before anything is
        // decided (again after a reload, since another writer may have committed an id).
        if dedup::wanted(ctx, &jobs) {
            // Boxed: a rare path whose reads would otherwise enlarge every batch's future.
            match Box::pin(dedup::admit(ctx, stream, base, window, &mut jobs)).await {
                Ok(later) => pending.extend(later),
                Err(e) => {
                    answer_all(jobs, || DispatchError::Store(e.clone()));
                    return AfterCommit::Continue;
                }
            }
            if jobs.is_empty() {
                return AfterCommit::Continue;
            }
        }
        if !counted {
            metrics.batch_started(jobs.len());
            counted = true;
        }
        let commands = jobs.iter().map(|j| (&j.command, j.options.as_deref()));
        let (events, outcomes) = match decide(state, base, ctx.clock.now(), commands) {
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
                if let Some(window) = window {
                    window.record(base, new_version, committed_commands(&jobs, &outcomes));
                }
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
                Box::pin(tokio::time::sleep(wait)).await;
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

/// `(command id, first sequence, last sequence)` of each command of the batch that wrote
/// events. Only explicit ids are kept: a fresh id cannot be repeated.
fn committed_commands<'a, A: Aggregate>(
    jobs: &'a [Job<A>],
    outcomes: &'a [Outcome<A::Error>],
) -> impl Iterator<Item = (Option<&'a str>, u64, u64)> {
    jobs.iter()
        .zip(outcomes)
        .filter_map(|(job, outcome)| match outcome {
            Outcome::Events { count, version } if *count > 0 => {
                Some((job.command_id(), version + 1 - *count as u64, *version))
            }
            _ => None,
        })
}

/// Answers each job with its outcome, handing out the recorded events in order. The command
/// that takes the last events gets the store's vector itself (a batch of one command, the
/// common case, allocates nothing here).
fn answer<A: Aggregate>(
    jobs: Vec<Job<A>>,
    outcomes: Vec<Outcome<A::Error>>,
    mut recorded: Vec<RecordedEvent>,
) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        job.answer(match outcome {
            Outcome::Events { count, version } => Ok(Committed {
                version,
                events: if count >= recorded.len() {
                    std::mem::take(&mut recorded)
                } else {
                    recorded.drain(..count).collect()
                },
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
