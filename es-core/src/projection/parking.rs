//! What a running projection does with its dead letters: parking an event (and every later one
//! of its key behind it), re-running a key's parked events in order, and skipping one; each
//! change saved with the state in one checkpoint write.

use super::dead_letter::{self, DeadLetter, key_of, wrap_state};
use super::error::ProjectionError;
use super::read_model::{Projection, apply_event};
use super::shared::Shared;
use crate::store::RecordedEvent;

/// Parks `event` with `error` in `shared`'s dead letters and updates the gauge. The caller holds
/// the state lock.
pub(super) fn park<P>(shared: &Shared<P>, event: &RecordedEvent, error: String) {
    tracing::warn!(projection = shared.name, position = event.position, error = %error, "parking an event");
    let mut parked = shared.parked.lock();
    parked.park(DeadLetter {
        key: key_of(event),
        position: event.position,
        event_type: event.event_type.clone(),
        error,
        skipped: None,
        retry_requested: false,
    });
    shared
        .metrics
        .dead_letters
        .set(parked.parked_count() as f64);
}

/// Parks `event` behind the first parked event of its key, if one is; `true` when it did.
pub(super) fn park_behind<P>(shared: &Shared<P>, event: &RecordedEvent) -> bool {
    let mut parked = shared.parked.lock();
    let behind = dead_letter::park_behind(&mut parked, event);
    if behind {
        tracing::warn!(
            projection = shared.name,
            position = event.position,
            "parking an event behind its stream's"
        );
        shared
            .metrics
            .dead_letters
            .set(parked.parked_count() as f64);
    }
    behind
}

/// The checkpoint state of `state` with `shared`'s dead letters, as the runner saves it.
pub(super) fn checkpoint_state<P: Projection>(
    shared: &Shared<P>,
    state: &P,
) -> Result<Option<Vec<u8>>, ProjectionError> {
    let own = if shared.persist_state {
        state.encode_state().transpose()?
    } else {
        None
    };
    wrap_state(own, &shared.parked.lock())
}

/// How long a retry or skip waits for a runner that stands by (a runner just started stands by
/// until its first check that it may run).
const STANDBY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks that `shared`'s runner may change its dead letters: it runs here and holds its lease.
/// A runner that stands by is given [`STANDBY_WAIT`] to take over.
async fn check_active<P>(shared: &Shared<P>) -> Result<(), ProjectionError> {
    let waited = tokio::time::Instant::now();
    while shared.progress.standby()
        && !shared.progress.is_stopped()
        && waited.elapsed() < STANDBY_WAIT
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let reason = if shared.progress.is_stopped() {
        "its runner is stopped: start it, then try again"
    } else if shared.progress.standby() {
        "its runner stands by while another process runs it: ask that process"
    } else {
        return Ok(());
    };
    Err(ProjectionError::DeadLetters {
        name: shared.name.to_owned(),
        reason: reason.to_owned(),
    })
}

/// The error of a runner whose task ended (and released its stores) meanwhile.
fn gone<P>(shared: &Shared<P>) -> ProjectionError {
    ProjectionError::DeadLetters {
        name: shared.name.to_owned(),
        reason: "its runner stopped: start it, then try again".to_owned(),
    }
}

/// Saves the checkpoint at the runner's position with `state` and the dead letters. The caller
/// holds the state lock (as the runner does when it saves), so the two saves never interleave.
async fn save<P: Projection>(shared: &Shared<P>, state: &P) -> Result<(), ProjectionError> {
    let bytes = checkpoint_state(shared, state)?;
    if let Some(store) = &shared.checkpoints {
        let store = store.upgrade().ok_or_else(|| gone(shared))?;
        store
            .save(&shared.checkpoint, shared.progress.position(), bytes)
            .await?;
    }
    Ok(())
}

/// The event at `position`, read again from the log.
async fn read_at<P>(shared: &Shared<P>, position: u64) -> Result<RecordedEvent, ProjectionError> {
    let store = shared.store.upgrade().ok_or_else(|| gone(shared))?;
    let events = store.read_all(position, 1).await?;
    match events.into_iter().next() {
        Some(event) if event.position == position => Ok(event),
        _ => Err(ProjectionError::DeadLetters {
            name: shared.name.to_owned(),
            reason: format!("the parked event at position {position} is not in the log"),
        }),
    }
}

/// Re-runs the parked events of `key` in order, each once; stops at the first that fails again
/// (it and those after it stay parked, its error updated). Saves the checkpoint with the new
/// state and dead letters, then returns how many were applied, or the failure.
pub(super) async fn retry<P: Projection>(
    shared: &Shared<P>,
    key: &str,
) -> Result<usize, ProjectionError> {
    check_active(shared).await?;
    retry_key(shared, key).await
}

/// Carries out the retries requested in the checkpoint ([`super::request_retry_in`]): called
/// by the runner's task, which logs the outcome (a failure stays parked, with its new error).
pub(super) async fn requested_retries<P: Projection>(shared: &Shared<P>) {
    let keys = {
        let parked = shared.parked.lock();
        if parked.is_empty() {
            return;
        }
        parked.requested_keys()
    };
    for key in keys {
        match retry_key(shared, &key).await {
            Ok(applied) => {
                tracing::info!(
                    projection = shared.name,
                    key,
                    applied,
                    "retried parked events"
                );
            }
            Err(e) => {
                tracing::warn!(projection = shared.name, key, error = %e, "a requested retry failed");
            }
        }
    }
}

/// [`retry`] without the check that the runner is active.
async fn retry_key<P: Projection>(shared: &Shared<P>, key: &str) -> Result<usize, ProjectionError> {
    let mut state = shared.state.lock().await;
    let letters = {
        let mut parked = shared.parked.lock();
        parked.clear_requests(key);
        parked.parked_of(key)
    };
    if letters.is_empty() {
        return Err(ProjectionError::DeadLetters {
            name: shared.name.to_owned(),
            reason: format!("no event of `{key}` is parked"),
        });
    }
    let mut applied = 0;
    let mut failure = None;
    for letter in letters {
        let event = match read_at(shared, letter.position).await {
            Ok(event) => event,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match apply_event(&mut *state, &event) {
            Ok(()) => {
                shared.parked.lock().remove(key, letter.position);
                applied += 1;
            }
            Err(e) => {
                shared
                    .parked
                    .lock()
                    .set_error(key, letter.position, e.to_string());
                failure = Some(e);
                break;
            }
        }
    }
    shared
        .metrics
        .dead_letters
        .set(shared.parked.lock().parked_count() as f64);
    shared.metrics.handled.add(applied as u64);
    save(shared, &state).await?;
    failure.map_or(Ok(applied), Err)
}

/// Drops the parked event of `key` at `position` without applying it, keeping `reason` in its
/// record, and saves the checkpoint. The events parked behind it stay parked until a retry.
pub(super) async fn skip<P: Projection>(
    shared: &Shared<P>,
    key: &str,
    position: u64,
    reason: &str,
) -> Result<(), ProjectionError> {
    check_active(shared).await?;
    let state = shared.state.lock().await;
    let skipped = {
        let mut parked = shared.parked.lock();
        let skipped = parked.skip(key, position, reason);
        shared
            .metrics
            .dead_letters
            .set(parked.parked_count() as f64);
        skipped
    };
    if !skipped {
        return Err(ProjectionError::DeadLetters {
            name: shared.name.to_owned(),
            reason: format!("no event of `{key}` is parked at position {position}"),
        });
    }
    save(shared, &state).await
}
