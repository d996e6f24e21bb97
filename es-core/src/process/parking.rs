//! The dead-letter queue of a process manager under [`ErrorPolicy::Park`]: an instance whose
//! handler fails (after the policy's retries) is parked with the event, and every later event
//! routed to it is parked behind; a parked instance sends no commands and fires no deadlines
//! until its events are retried or skipped. The records are the projections' ([`DeadLetter`],
//! keyed by the instance key) and travel in the checkpoint's state, in the same envelope
//! around the saved instances, so `es dlq` reads and edits them the same way.
//!
//! Retries and skips asked for through a handle (`requests`) are carried out by the runner's
//! task (it owns the instances), at its next page or when it next reaches the head of the
//! log, and saved at once.
//!
//! [`ErrorPolicy::Park`]: crate::projection::ErrorPolicy::Park

use crate::follow::{Control, End};
use crate::projection::{DeadLetter, ProjectionError, wrap_state};
use crate::store::RecordedEvent;

use super::requests::Ask;
use super::runner::{Handled, Runner, Trigger};
use super::{ProcessManager, route};

impl<P: ProcessManager> Runner<P> {
    /// The checkpoint state: the instances and deadlines, with the dead letters around them.
    pub(super) fn checkpoint_state(&self) -> Result<Option<Vec<u8>>, End> {
        let failed = |e: String| {
            End::Failed(format!(
                "process manager `{}`: encoding the instances: {e}",
                P::NAME
            ))
        };
        let bytes = super::instances::encode_instances(&self.instances, self.timers.by_key())
            .map_err(|e| failed(e.to_string()))?;
        wrap_state(Some(bytes), &self.parked).map_err(|e| failed(e.to_string()))
    }

    /// Publishes the dead letters to the handles and the gauge.
    pub(super) fn publish_parked(&self) {
        *self.shared.dead_letters.lock() = self.parked.list();
        self.shared
            .dead_letter_gauge
            .set(self.parked.parked_count() as f64);
    }

    /// Whether instance `key` is parked.
    pub(super) fn is_parked(&self, key: &str) -> bool {
        !self.parked.is_empty() && self.parked.first_of(key).is_some()
    }

    /// Parks `event` of instance `key` with `error`.
    pub(super) fn park(&mut self, key: &str, event: &RecordedEvent, error: String) {
        tracing::warn!(process_manager = P::NAME, key, position = event.position, error = %error, "parking an instance");
        self.parked.park(DeadLetter {
            key: key.to_owned(),
            position: event.position,
            event_type: event.event_type.clone(),
            error,
            skipped: None,
            retry_requested: false,
        });
        self.publish_parked();
    }

    /// Parks `event` behind the first parked event of instance `key` (the caller checked that
    /// one is).
    pub(super) fn park_behind(&mut self, key: &str, event: &RecordedEvent) {
        let first = self.parked.first_of(key).map_or(0, |l| l.position);
        self.park(key, event, format!("parked behind position {first}"));
    }

    /// Carries out the retries requested in the checkpoint (`es dlq retry`) and the requests
    /// of the handles, saving after each.
    pub(super) async fn serve_requests(&mut self, control: &Control) -> Result<(), End> {
        if !self.parked.is_empty() && control.may_save() {
            for key in self.parked.requested_keys() {
                match self.retry_key(&key, control).await? {
                    Ok(applied) => {
                        tracing::info!(
                            process_manager = P::NAME,
                            key,
                            applied,
                            "retried parked events"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(process_manager = P::NAME, key, error = %e, "a requested retry failed");
                    }
                }
            }
        }
        while let Ok(request) = self.requests.try_recv() {
            let answer = if control.may_save() {
                match request.ask {
                    Ask::Retry(key) => self.retry_key(&key, control).await?,
                    Ask::Skip {
                        key,
                        position,
                        reason,
                    } => self.skip_letter(&key, position, &reason, control).await?,
                }
            } else {
                Err(ProjectionError::DeadLetters {
                    name: self.shared.name.clone(),
                    reason: "its runner lost its lease to another process: ask that process"
                        .to_owned(),
                })
            };
            // The asker may have given up waiting: nothing to do then.
            let _ = request.reply.send(answer);
        }
        Ok(())
    }

    /// Saves the checkpoint at the runner's position with the dead letters as they are now.
    async fn save_now(&mut self, control: &Control) -> Result<(), End> {
        self.unsaved = Some(self.shared.progress.position());
        self.save_unsaved(control).await
    }

    /// Re-runs the parked events of instance `key` in order (each instance's deadlines due by
    /// an event's stamp fire first, as they would have), dispatching what each sends before
    /// the next; stops at the first that fails again (it and those after it stay parked, its
    /// error updated). Saves, then answers how many were applied, or the failure.
    async fn retry_key(
        &mut self,
        key: &str,
        control: &Control,
    ) -> Result<Result<usize, ProjectionError>, End> {
        self.parked.clear_requests(key);
        let letters = self.parked.parked_of(key);
        if letters.is_empty() {
            return Ok(Err(ProjectionError::DeadLetters {
                name: self.shared.name.clone(),
                reason: format!("no event of `{key}` is parked"),
            }));
        }
        let Some(store) = self.kernel.upgrade().map(|k| k.event_store().clone()) else {
            return Err(End::Stopped);
        };
        let mut applied = 0;
        let mut failure = None;
        for letter in letters {
            let event = match store.read_all(letter.position, 1).await {
                Ok(events) => match events.into_iter().next() {
                    Some(event) if event.position == letter.position => event,
                    _ => {
                        failure = Some(ProjectionError::DeadLetters {
                            name: self.shared.name.clone(),
                            reason: format!(
                                "the parked event at position {} is not in the log",
                                letter.position
                            ),
                        });
                        break;
                    }
                },
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            };
            let mark = self.timers.mark();
            while let Some(deadline) = self.timers.take_due(key, event.timestamp, mark) {
                if let Handled::Ran(step) = self.fire(key.to_owned(), deadline, control).await? {
                    self.flush(&mut vec![step], control).await?;
                }
            }
            let existed = self.instances.contains_key(key);
            let outcome = match route(&mut self.instances, &event) {
                Some((routed, state)) => {
                    self.handle(routed, state, Trigger::Event(&event), existed, control)
                        .await?
                }
                // No instance to run it (it finished meanwhile, or the event starts none).
                None => Handled::Dropped,
            };
            match outcome {
                Handled::Ran(step) => {
                    self.shared.metrics.events_handled.add(1);
                    self.flush(&mut vec![step], control).await?;
                }
                Handled::Dropped => {}
                Handled::Parked(error) => {
                    self.parked.set_error(key, letter.position, error.clone());
                    failure = Some(ProjectionError::DeadLetters {
                        name: self.shared.name.clone(),
                        reason: format!(
                            "the event at position {} failed again: {error}",
                            letter.position
                        ),
                    });
                    break;
                }
            }
            self.parked.remove(key, letter.position);
            applied += 1;
        }
        self.publish_parked();
        self.publish_counts();
        self.save_now(control).await?;
        Ok(failure.map_or(Ok(applied), Err))
    }

    /// Drops the parked event of `key` at `position`, keeping `reason`, and saves. The events
    /// parked behind it stay parked until a retry.
    async fn skip_letter(
        &mut self,
        key: &str,
        position: u64,
        reason: &str,
        control: &Control,
    ) -> Result<Result<usize, ProjectionError>, End> {
        if !self.parked.skip(key, position, reason) {
            return Ok(Err(ProjectionError::DeadLetters {
                name: self.shared.name.clone(),
                reason: format!("no event of `{key}` is parked at position {position}"),
            }));
        }
        self.publish_parked();
        self.save_now(control).await?;
        Ok(Ok(1))
    }
}
