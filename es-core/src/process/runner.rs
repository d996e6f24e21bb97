//! The process manager runner: reads the log in order, routes events to instances, dispatches
//! their commands, handles rejections, and checkpoints position and instances together.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::handle::Shared;
use super::{Commands, Outcome, ProcessManager, Rejection, handle_event, handle_rejection, route};
use crate::kernel::WeakKernel;
use crate::projection::runner::{
    Elected, Election, SaveEnd, backoff, pause_unless_stopped, save_checkpoint_retrying,
};
use crate::projection::{ErrorPolicy, ProjectionError, ProjectionOptions, ProjectionPhase};
use crate::store::{CheckpointStore, EventStore, RecordedEvent};

/// How many times a store failure is retried (reads, checkpoints, commands) before stopping.
const STORE_ATTEMPTS: u32 = 10;
/// The checkpoint format written by this version.
const FORMAT: u32 = 1;
/// How often a busy runner saves its checkpoint (it also saves whenever it reaches the head of
/// the log, and when it stops). Between two saves, a crash makes the next runner handle the
/// events again and send the same commands, which the aggregates' idempotency windows answer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The saved checkpoint state: the live instances.
#[derive(Serialize)]
struct SavedRef<'a, P> {
    format: u32,
    instances: &'a HashMap<String, P>,
}

#[derive(Deserialize)]
struct Saved<P> {
    format: u32,
    instances: HashMap<String, P>,
}

/// Decodes the instances saved with a checkpoint.
pub(super) fn decode_instances<P: ProcessManager>(
    bytes: &[u8],
) -> Result<HashMap<String, P>, ProjectionError> {
    let saved: Saved<P> = serde_json::from_slice(bytes).map_err(|e| {
        ProjectionError::State(format!(
            "the saved instances of process manager `{}` do not decode: {e}",
            P::NAME
        ))
    })?;
    if saved.format > FORMAT {
        return Err(ProjectionError::State(format!(
            "the checkpoint of process manager `{}` has format {}, newer than this version \
             reads ({FORMAT})",
            P::NAME,
            saved.format
        )));
    }
    Ok(saved.instances)
}

/// One instance's part of a wave: its state and what its handler sent.
struct Step<P> {
    key: String,
    state: P,
    out: Commands,
}

/// Why a runner's loop ended.
pub(super) enum End {
    Stopped,
    Failed(String),
}

/// One process manager's runner task.
pub(super) struct Runner<P> {
    pub(super) kernel: WeakKernel,
    pub(super) store: Arc<dyn EventStore>,
    pub(super) checkpoints: Arc<dyn CheckpointStore>,
    pub(super) checkpoint_name: String,
    pub(super) options: ProjectionOptions,
    pub(super) shared: Arc<Shared>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) instances: HashMap<String, P>,
    /// When the checkpoint was last saved.
    pub(super) saved_at: Instant,
    /// The position handled but not yet saved, if any.
    pub(super) unsaved: Option<u64>,
    /// Its part in electing one active runner per name among processes (its lease).
    pub(super) election: Election,
}

impl<P> Drop for Runner<P> {
    /// A task that ends without recording why (a panic outside the handlers, the runtime
    /// shutting down) still reports that it stopped.
    fn drop(&mut self) {
        let mut phase = self.shared.phase.lock();
        if !matches!(*phase, ProjectionPhase::Stopped { .. }) {
            *phase = ProjectionPhase::Stopped {
                error: Some("the runner's task ended unexpectedly".to_owned()),
            };
            drop(phase);
            self.shared.processed.send_modify(|_| {});
        }
    }
}

impl<P: ProcessManager> Runner<P> {
    /// The task: follows the log until stopped or failed, then records why.
    pub(super) async fn run(mut self) {
        let error = match self.follow().await {
            End::Stopped => {
                // What was handled and answered is saved, so the next runner need not send it
                // again (it would be answered from the idempotency windows if it did).
                if let Err(End::Failed(e)) = self.save_unsaved().await {
                    tracing::warn!(process_manager = P::NAME, error = %e, "saving the checkpoint at stop failed");
                }
                None
            }
            End::Failed(e) => {
                tracing::error!(process_manager = P::NAME, error = %e, "process manager stopped");
                Some(e)
            }
        };
        *self.shared.phase.lock() = ProjectionPhase::Stopped { error };
        self.shared.processed.send_modify(|_| {});
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn set_phase(&self, phase: ProjectionPhase) {
        let mut current = self.shared.phase.lock();
        if *current != phase {
            *current = phase;
        }
    }

    async fn follow(&mut self) -> End {
        let mut head = self.store.subscribe();
        let mut failures = 0u32;
        loop {
            if self.stopping() {
                return End::Stopped;
            }
            if let Err(end) = self.ensure_lease().await {
                return end;
            }
            let next = *self.shared.processed.borrow() + 1;
            let page = match self
                .store
                .read_all_filtered(next, self.options.batch_size, P::accepts)
                .await
            {
                Ok(page) => {
                    failures = 0;
                    page
                }
                Err(e) => {
                    failures += 1;
                    if failures >= STORE_ATTEMPTS {
                        return End::Failed(format!("reading the log at {next}: {e}"));
                    }
                    tracing::warn!(process_manager = P::NAME, error = %e, "reading the log failed; retrying");
                    if self.pause(backoff(failures)).await {
                        return End::Stopped;
                    }
                    continue;
                }
            };
            if page.scanned == 0 {
                if let Err(end) = self.save_unsaved().await {
                    return end;
                }
                self.shared.metrics.lag_events.set(0.0);
                self.set_phase(ProjectionPhase::CaughtUp);
                head.borrow_and_update();
                if *head.borrow() >= next {
                    if self.pause(Duration::from_millis(2)).await {
                        return End::Stopped;
                    }
                    continue;
                }
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = head.wait_for(|h| *h >= next) => {}
                    _ = stop.wait_for(|s| *s) => return End::Stopped,
                    () = tokio::time::sleep(self.options.poll_interval) => {}
                }
                continue;
            }
            self.set_phase(ProjectionPhase::Running);
            let head_now = *head.borrow();
            self.shared
                .metrics
                .lag_events
                .set(head_now.saturating_sub(next - 1) as f64);
            if let Err(end) = self.process(&page.events, page.scanned_to).await {
                return end;
            }
        }
    }

    /// Handles one page. Each instance sees its events in log order, one at a time: the page
    /// is handled in rounds, round `k` feeding every instance its `k`th event of the page, and a
    /// round's commands are dispatched concurrently and answered (rejections handled) before
    /// the next round. Instances are independent, so this is what handling the page event by
    /// event would do, with as many commands in flight as there are instances. Then the
    /// position is published, and saved with the instances when it is time to.
    async fn process(&mut self, page: &[RecordedEvent], scanned_to: u64) -> Result<(), End> {
        let mut order: Vec<String> = Vec::new();
        let mut by_key: HashMap<String, Vec<&RecordedEvent>> = HashMap::new();
        for event in page {
            let Some(key) = P::key(event) else { continue };
            by_key
                .entry(key)
                .or_insert_with_key(|key| {
                    order.push(key.clone());
                    Vec::new()
                })
                .push(event);
        }
        let rounds = by_key.values().map(Vec::len).max().unwrap_or(0);
        let processed = scanned_to;
        let mut handled = 0u64;
        let mut wave: Vec<Step<P>> = Vec::new();
        for round in 0..rounds {
            for key in &order {
                let Some(event) = by_key.get(key).and_then(|events| events.get(round)) else {
                    continue;
                };
                let existed = self.instances.contains_key(key);
                let Some((key, state)) = route(&mut self.instances, event) else {
                    continue;
                };
                if let Some(step) = self.handle(key, state, event, existed).await? {
                    handled += 1;
                    wave.push(step);
                }
            }
            self.flush(&mut wave).await?;
        }
        self.shared
            .events_handled
            .fetch_add(handled, Ordering::Relaxed);
        self.shared.metrics.events_handled.increment(handled);
        self.shared
            .instances
            .store(self.instances.len(), Ordering::Relaxed);
        self.shared
            .metrics
            .instances
            .set(self.instances.len() as f64);
        if processed > *self.shared.processed.borrow() {
            self.unsaved = Some(processed);
            self.shared.processed.send_replace(processed);
            if self.saved_at.elapsed() >= CHECKPOINT_EVERY {
                self.save_unsaved().await?;
            }
        }
        if self.stopping() {
            return Err(End::Stopped);
        }
        Ok(())
    }

    /// Runs an event's handler under the error policy. `None`: the event was skipped (the
    /// instance keeps its state from before the event, or is not created).
    async fn handle(
        &mut self,
        key: String,
        mut state: P,
        event: &RecordedEvent,
        existed: bool,
    ) -> Result<Option<Step<P>>, End> {
        // Under `Skip` and `Retry` a failed attempt must leave no trace: keep the state from
        // before the event.
        let before = match self.options.error_policy {
            ErrorPolicy::Stop => None,
            _ => Some(serde_json::to_vec(&state).map_err(|e| {
                End::Failed(format!(
                    "process manager `{}`: encoding an instance: {e}",
                    P::NAME
                ))
            })?),
        };
        let mut attempt = 0u32;
        loop {
            let mut out = Commands::new(P::NAME, key.clone(), event.position);
            let error = match handle_event(&mut state, event, &mut out) {
                Ok(()) => return Ok(Some(Step { key, state, out })),
                Err(e) => e,
            };
            let restore = |bytes: &Option<Vec<u8>>| -> Result<P, End> {
                match bytes {
                    Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                        End::Failed(format!(
                            "process manager `{}`: decoding an instance: {e}",
                            P::NAME
                        ))
                    }),
                    None => Ok(P::default()),
                }
            };
            match &self.options.error_policy {
                ErrorPolicy::Stop => return Err(End::Failed(error.to_string())),
                ErrorPolicy::Skip => {
                    tracing::warn!(process_manager = P::NAME, position = event.position, error = %error, "skipping an event");
                    self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                    if existed {
                        self.instances.insert(key, restore(&before)?);
                    }
                    return Ok(None);
                }
                ErrorPolicy::Retry {
                    attempts,
                    initial_backoff,
                    max_backoff,
                } => {
                    attempt += 1;
                    if attempt > *attempts {
                        return Err(End::Failed(format!("{error} (after {attempts} retries)")));
                    }
                    state = restore(&before)?;
                    let wait = initial_backoff
                        .saturating_mul(2u32.saturating_pow(attempt - 1))
                        .min(*max_backoff);
                    tracing::warn!(process_manager = P::NAME, position = event.position, attempt, error = %error, "retrying an event");
                    if self.pause(wait).await {
                        return Err(End::Stopped);
                    }
                }
            }
        }
    }

    /// Dispatches the wave's commands until none is left (a rejection handler may send more),
    /// then puts the instances that did not finish back.
    async fn flush(&mut self, wave: &mut Vec<Step<P>>) -> Result<(), End> {
        loop {
            let mut batch = Vec::new();
            for (step_index, step) in wave.iter_mut().enumerate() {
                for command in step.out.take() {
                    batch.push((step_index, command));
                }
            }
            if batch.is_empty() {
                break;
            }
            self.shared
                .commands_sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.shared
                .metrics
                .commands_sent
                .increment(batch.len() as u64);
            let outcomes = self.dispatch(&batch).await?;
            for ((step_index, command), message) in batch.iter().zip(outcomes) {
                let Some(message) = message else { continue };
                let rejection = Rejection {
                    aggregate_type: command.aggregate_type.to_owned(),
                    aggregate_id: command.aggregate_id.clone(),
                    command_id: command
                        .options
                        .envelope
                        .command_id()
                        .unwrap_or_default()
                        .to_owned(),
                    message,
                };
                self.shared.rejections.fetch_add(1, Ordering::Relaxed);
                self.shared.metrics.rejections.increment(1);
                let step = &mut wave[*step_index];
                if let Err(error) = handle_rejection(&mut step.state, &rejection, &mut step.out) {
                    match self.options.error_policy {
                        ErrorPolicy::Stop => {
                            return Err(End::Failed(format!(
                                "process manager `{}`: `#[rejected]` of instance `{}` failed on {}: {error}",
                                P::NAME,
                                step.key,
                                rejection.command_id
                            )));
                        }
                        _ => {
                            tracing::warn!(process_manager = P::NAME, command_id = %rejection.command_id, error = %error, "skipping a rejection");
                            self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        for step in wave.drain(..) {
            if !step.out.is_finished() {
                self.instances.insert(step.key, step.state);
            }
        }
        Ok(())
    }

    /// Dispatches a batch concurrently; for each command, `None` when it committed, or the
    /// rejection's message. Store failures are retried with the same command id.
    async fn dispatch(
        &self,
        batch: &[(usize, super::SentCommand)],
    ) -> Result<Vec<Option<String>>, End> {
        let mut answers: Vec<Option<Option<String>>> = vec![None; batch.len()];
        let mut failures = 0u32;
        loop {
            let Some(kernel) = self.kernel.upgrade() else {
                return Err(End::Stopped);
            };
            let mut tasks = JoinSet::new();
            for (i, (_, command)) in batch.iter().enumerate() {
                if answers[i].is_none() {
                    let send = command.send(kernel.clone());
                    tasks.spawn(async move { (i, send.await) });
                }
            }
            drop(kernel);
            let mut retry = None;
            let mut shutdown = false;
            while let Some(joined) = tasks.join_next().await {
                let (i, outcome) = match joined {
                    Ok(answer) => answer,
                    Err(e) => return Err(End::Failed(format!("a dispatch task failed: {e}"))),
                };
                match outcome {
                    Outcome::Done => answers[i] = Some(None),
                    Outcome::Rejected(message) => answers[i] = Some(Some(message)),
                    Outcome::Retry(message) => retry = Some(message),
                    Outcome::Shutdown => shutdown = true,
                }
            }
            if shutdown {
                return Err(End::Stopped);
            }
            let Some(error) = retry else {
                return Ok(answers.into_iter().map(Option::flatten).collect());
            };
            failures += 1;
            if failures >= STORE_ATTEMPTS {
                return Err(End::Failed(format!(
                    "process manager `{}`: dispatching a command failed {failures} times: {error}",
                    P::NAME
                )));
            }
            tracing::warn!(process_manager = P::NAME, error = %error, "dispatching a command failed; retrying");
            // Stopping here is safe: nothing of this page is checkpointed, so the next runner
            // sends the same commands again.
            if self.pause(backoff(failures)).await {
                return Err(End::Stopped);
            }
        }
    }

    /// Makes sure this runner may run: on a store that elects one runner per name among
    /// processes, waits (as a standby) until it holds the lease, then resumes from the
    /// checkpoint the previous holder saved. A lost lease drops what was not saved (the next
    /// holder handles it again, with the same command ids).
    async fn ensure_lease(&mut self) -> Result<(), End> {
        if self.election.may_run() {
            return Ok(());
        }
        self.unsaved = None;
        let shared = &self.shared;
        let standby = |on: bool| {
            shared.standby.store(on, Ordering::Relaxed);
            if on {
                // A standby is not caught up: it handles nothing until it takes over.
                let mut phase = shared.phase.lock();
                if *phase == ProjectionPhase::CaughtUp {
                    *phase = ProjectionPhase::Running;
                }
            }
        };
        let elected = self
            .election
            .wait_until_elected(&*self.checkpoints, &self.stop, &standby)
            .await;
        match elected {
            Err(()) => return Err(End::Stopped),
            Ok(Elected::NotNeeded) => {}
            Ok(Elected::TookOver) => self.resume_from_checkpoint().await?,
        }
        self.shared.standby.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Reloads position and instances from the checkpoint (after taking the lease over).
    async fn resume_from_checkpoint(&mut self) -> Result<(), End> {
        let checkpoint = match self.checkpoints.load(&self.checkpoint_name).await {
            Ok(checkpoint) => checkpoint,
            Err(e) => return Err(End::Failed(format!("loading the checkpoint: {e}"))),
        };
        // Always the saved pair (position, instances): what this process handled but did not
        // save is handled again, answered from the idempotency windows.
        let Some(checkpoint) = checkpoint else {
            return Ok(());
        };
        self.instances = match &checkpoint.state {
            Some(bytes) => decode_instances::<P>(bytes).map_err(|e| End::Failed(e.to_string()))?,
            None => HashMap::new(),
        };
        self.unsaved = None;
        self.shared
            .instances
            .store(self.instances.len(), Ordering::Relaxed);
        self.shared.processed.send_replace(checkpoint.position);
        Ok(())
    }

    /// Saves the position handled since the last save, if any.
    async fn save_unsaved(&mut self) -> Result<(), End> {
        if self.election.is_lost() {
            // Another process may hold the lease now: its checkpoint wins.
            self.unsaved = None;
            return Ok(());
        }
        if let Some(position) = self.unsaved {
            self.save_checkpoint(position).await?;
            self.unsaved = None;
            self.saved_at = Instant::now();
        }
        Ok(())
    }

    /// Saves position and instances in one write, retrying failures.
    async fn save_checkpoint(&self, position: u64) -> Result<(), End> {
        let bytes = serde_json::to_vec(&SavedRef {
            format: FORMAT,
            instances: &self.instances,
        })
        .map_err(|e| {
            End::Failed(format!(
                "process manager `{}`: encoding the instances: {e}",
                P::NAME
            ))
        })?;
        // A stop while waiting to retry leaves this page's commands, already answered, to be
        // answered again from the idempotency window by the next runner.
        save_checkpoint_retrying(
            &*self.checkpoints,
            &self.checkpoint_name,
            position,
            Some(bytes),
            &self.stop,
        )
        .await
        .map_err(|end| match end {
            SaveEnd::Stopped => End::Stopped,
            SaveEnd::Failed(message) => End::Failed(message),
        })
    }

    /// Sleeps, returning `true` if a stop was requested meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        pause_unless_stopped(&self.stop, wait).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::{Deserialize, Serialize};

    use super::decode_instances;
    use crate::process::{Commands, ProcessManager};
    use crate::projection::ProjectionError;
    use crate::store::RecordedEvent;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Flow {
        step: u32,
    }

    impl ProcessManager for Flow {
        const NAME: &'static str = "flow";
        fn accepts(_: &str) -> bool {
            true
        }
        fn starts(_: &RecordedEvent) -> bool {
            true
        }
        fn handle(&mut self, _: &RecordedEvent, _: &mut Commands) -> Result<(), ProjectionError> {
            Ok(())
        }
    }

    /// The checkpoint format is a stored format: version 1 as written by the first release.
    #[test]
    fn checkpoints_of_format_1_decode_and_newer_ones_are_refused() {
        let stored = br#"{"format":1,"instances":{"t-1":{"step":2},"t-2":{"step":0}}}"#;
        let instances = decode_instances::<Flow>(stored).unwrap();
        assert_eq!(
            instances,
            HashMap::from([
                ("t-1".to_owned(), Flow { step: 2 }),
                ("t-2".to_owned(), Flow { step: 0 }),
            ])
        );
        let newer = br#"{"format":2,"instances":{}}"#;
        let error = decode_instances::<Flow>(newer).unwrap_err().to_string();
        assert!(error.contains("format 2"), "{error}");
        let garbage = decode_instances::<Flow>(b"not json")
            .unwrap_err()
            .to_string();
        assert!(garbage.contains("do not decode"), "{garbage}");
    }
}
