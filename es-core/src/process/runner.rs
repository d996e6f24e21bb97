//! A process manager runner's own part (the follower in `crate::follow` does the rest): routes
//! each page's events to instances, fires their deadlines, dispatches their commands, handles
//! rejections, and checkpoints position, instances and deadlines together.
//!
//! # When a deadline fires
//!
//! A deadline fires once the runner has handled every event stamped before its due time, so
//! that handling the log again after a restart fires it at the same point among its instance's
//! events: before an event of its instance stamped at or after its due time, after a page
//! whose last event is stamped at or after it, and, at the head of the log, when the kernel's
//! clock reaches it (the runner waits for that through [`Clock::sleep_until`]). A deadline
//! scheduled while deadlines fire waits for the next of these points.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::follow::{Alarm, Control, End, Follow, Page, STORE_ATTEMPTS, backoff};
use crate::kernel::WeakKernel;
use crate::projection::partition_of;
use crate::projection::{ErrorPolicy, OnFailure, Parked, ProjectionError, ProjectionOptions};
use crate::store::{Checkpoint, RecordedEvent};

use super::deadline::{ScheduledDeadline, Timers};
use super::requests::{Request, load_state};
use super::status::Shared;
use super::{
    Commands, Outcome, ProcessManager, Rejection, SentCommand, handle_deadline, handle_event,
    handle_rejection, route,
};

/// How often a busy runner saves its checkpoint (it also saves whenever it reaches the head of
/// the log, and when it stops). Between two saves, a crash makes the next runner handle the
/// events again and send the same commands, which the aggregates' idempotency windows answer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// One instance's part of a wave: its state and what its handler sent.
pub(super) struct Step<P> {
    key: String,
    state: P,
    out: Commands,
}

/// What a handler runs for: an event of the log, or a deadline that fell due.
#[derive(Clone, Copy)]
pub(super) enum Trigger<'a> {
    Event(&'a RecordedEvent),
    Deadline(&'a ScheduledDeadline),
}

impl Trigger<'_> {
    /// Where it is, for the log: the event's position or the deadline's id.
    fn describe(&self) -> String {
        match self {
            Trigger::Event(event) => format!("event at {}", event.position),
            Trigger::Deadline(deadline) => format!("deadline {}", deadline.id()),
        }
    }
}

/// What running a handler under the error policy came to.
pub(super) enum Handled<P> {
    /// It ran: the instance's new state and what it sent.
    Ran(Step<P>),
    /// It was skipped, or there was no instance to run it: the instance keeps its state from
    /// before, or is not created.
    Dropped,
    /// It failed under [`ErrorPolicy::Park`] (the instance keeps its state from before, or is
    /// not created): the event is to be parked with this error.
    Parked(String),
}

/// One process manager's runner: its instances, and how it sends their commands.
pub(super) struct Runner<P> {
    pub(super) kernel: WeakKernel,
    /// The kernel's clock: deadlines fall due by it.
    pub(super) clock: Arc<dyn Clock>,
    pub(super) options: ProjectionOptions,
    pub(super) shared: Arc<Shared>,
    pub(super) instances: HashMap<String, P>,
    /// The instances' pending deadlines.
    pub(super) timers: Timers,
    /// When the checkpoint was last saved.
    pub(super) saved_at: Instant,
    /// The position handled but not yet saved, if any.
    pub(super) unsaved: Option<u64>,
    /// Its partition and how many there are: it handles the instances whose key hashes to it.
    pub(super) route: (u32, u32),
    /// Its dead letters ([`ErrorPolicy::Park`]): the parked instances' events.
    pub(super) parked: Parked,
    /// Retries and skips asked for through the handles.
    pub(super) requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
}

impl<P: ProcessManager> Follow for Runner<P> {
    async fn page(&mut self, page: Page, control: &Control) -> Result<(), End> {
        self.shared
            .metrics
            .lag_events
            .set(page.head.saturating_sub(page.after) as f64);
        self.serve_requests(control).await?;
        self.process(&page.read.events, page.read.scanned_to, control)
            .await
    }

    /// At the head of the log, the deadlines due by the clock fire.
    async fn caught_up(&mut self, _: u64, control: &Control) -> Result<(), End> {
        self.serve_requests(control).await?;
        let now = self.clock.now();
        if self.fire_due(now, control).await? {
            self.unsaved = Some(self.shared.progress.position());
        }
        self.save_unsaved(control).await?;
        self.shared.metrics.lag_events.set(0.0);
        Ok(())
    }

    /// Reloads position and instances from the checkpoint: always the saved pair, so what
    /// this process handled but did not save is handled again, answered from the idempotency
    /// windows.
    async fn resume(&mut self, checkpoint: Option<Checkpoint>) -> Result<(), End> {
        self.unsaved = None;
        let Some(checkpoint) = checkpoint else {
            return Ok(());
        };
        let ((instances, deadlines), parked) =
            load_state::<P>(checkpoint.state).map_err(|e| End::Failed(e.to_string()))?;
        self.instances = instances;
        self.timers = Timers::new(deadlines);
        self.parked = parked;
        self.publish_counts();
        self.publish_parked();
        self.shared.progress.publish(checkpoint.position);
        Ok(())
    }

    /// The earliest pending deadline of an instance that is not parked, by the kernel's clock.
    fn alarm(&self) -> Option<Alarm> {
        self.timers
            .next_due_where(|key| !self.is_parked(key))
            .map(|due| self.clock.sleep_until(due))
    }

    /// What was handled and answered is saved at a stop, so the next runner need not send it
    /// again (it would be answered from the idempotency windows if it did).
    async fn finish(&mut self, end: &End, control: &Control) {
        if let End::Stopped = end
            && let Err(End::Failed(e)) = self.save_unsaved(control).await
        {
            tracing::warn!(process_manager = P::NAME, error = %e, "saving the checkpoint at stop failed");
        }
    }
}

impl<P: ProcessManager> Runner<P> {
    /// Handles one page. Each instance sees its events in log order, one at a time: the page
    /// is handled in rounds, each round feeding every instance its next event of the page (or,
    /// first, a deadline of it due by that event's stamp), and a round's commands are
    /// dispatched concurrently and answered (rejections handled) before the next round.
    /// Instances are independent, so this is what handling the page event by event would do,
    /// with as many commands in flight as there are instances. Then the deadlines due by the
    /// page's latest stamp fire, the position is published, and saved with the instances when
    /// it is time to.
    async fn process(
        &mut self,
        page: &[RecordedEvent],
        scanned_to: u64,
        control: &Control,
    ) -> Result<(), End> {
        let mut order: Vec<String> = Vec::new();
        // Per instance: its events of the page, and the deadline mark of the first one (taken
        // when it comes up, so deadlines scheduled while deadlines fire before it wait).
        type Queue<'e> = (VecDeque<&'e RecordedEvent>, Option<u64>);
        let mut by_key: HashMap<String, Queue<'_>> = HashMap::new();
        let mut last_stamp: Option<DateTime<Utc>> = None;
        for event in page {
            last_stamp = last_stamp.max(Some(event.timestamp));
            let Some(key) = P::key(event) else { continue };
            if self.route.1 > 1 && partition_of(&key, self.route.1) != self.route.0 {
                // Another partition's instance.
                continue;
            }
            by_key
                .entry(key)
                .or_insert_with_key(|key| {
                    order.push(key.clone());
                    (VecDeque::new(), None)
                })
                .0
                .push_back(event);
        }
        let processed = scanned_to;
        let mut handled = 0u64;
        let mut wave: Vec<Step<P>> = Vec::new();
        loop {
            let mut pending = false;
            for key in &order {
                let Some((queue, marked)) = by_key.get_mut(key) else {
                    continue;
                };
                let Some(event) = queue.front().copied() else {
                    continue;
                };
                pending = true;
                if self.is_parked(key) {
                    // Parked behind its instance's first parked event, in order.
                    queue.pop_front();
                    self.park_behind(key, event);
                    continue;
                }
                // The instance's deadlines due by the event's stamp fire before it, one a round.
                let mark = *marked.get_or_insert_with(|| self.timers.mark());
                if let Some(deadline) = self.timers.take_due(key, event.timestamp, mark) {
                    if let Handled::Ran(step) = self.fire(key.clone(), deadline, control).await? {
                        wave.push(step);
                    }
                    continue;
                }
                queue.pop_front();
                *marked = None;
                let existed = self.instances.contains_key(key);
                let key_copy = key.clone();
                let Some((key, state)) = route(&mut self.instances, event) else {
                    continue;
                };
                let trigger = Trigger::Event(event);
                match self.handle(key, state, trigger, existed, control).await? {
                    Handled::Ran(step) => {
                        handled += 1;
                        wave.push(step);
                    }
                    Handled::Dropped => {}
                    Handled::Parked(error) => {
                        self.park(&key_copy, event, error);
                    }
                }
            }
            if !pending {
                break;
            }
            self.flush(&mut wave, control).await?;
        }
        self.shared.metrics.events_handled.add(handled);
        if let Some(stamp) = last_stamp {
            self.fire_due(stamp, control).await?;
        }
        self.publish_counts();
        if processed > self.shared.progress.position() {
            self.unsaved = Some(processed);
            self.shared.progress.publish(processed);
            if self.saved_at.elapsed() >= CHECKPOINT_EVERY {
                self.save_unsaved(control).await?;
            }
        }
        if control.stopping() {
            return Err(End::Stopped);
        }
        Ok(())
    }

    /// Publishes the counts of instances and pending deadlines.
    pub(super) fn publish_counts(&self) {
        let (instances, deadlines) = (self.instances.len(), self.timers.len());
        self.shared.instances.store(instances, Ordering::Relaxed);
        self.shared.deadlines.store(deadlines, Ordering::Relaxed);
        self.shared.metrics.instances.set(instances as f64);
        self.shared.metrics.deadlines_pending.set(deadlines as f64);
    }

    /// Fires the deadlines due at or before `until`, round by round (one per instance per
    /// round, each instance's in due order), each round's commands answered before the next.
    /// Deadlines scheduled meanwhile wait for the next call. Returns whether any fired.
    async fn fire_due(&mut self, until: DateTime<Utc>, control: &Control) -> Result<bool, End> {
        let mark = self.timers.mark();
        let mut fired = false;
        loop {
            let mut keys = self.timers.due_keys(until, mark);
            // A parked instance fires no deadline until it is retried.
            keys.retain(|key| !self.is_parked(key));
            if keys.is_empty() {
                break;
            }
            let mut wave = Vec::new();
            for key in keys {
                if let Some(deadline) = self.timers.take_due(&key, until, mark)
                    && let Handled::Ran(step) = self.fire(key, deadline, control).await?
                {
                    wave.push(step);
                }
            }
            self.flush(&mut wave, control).await?;
            fired = true;
        }
        if fired {
            self.publish_counts();
        }
        Ok(fired)
    }

    /// Runs the handler of instance `key`'s `deadline` (taken out of the timers); not
    /// [`Handled::Ran`] when it was skipped, or its instance is gone.
    pub(super) async fn fire(
        &mut self,
        key: String,
        deadline: ScheduledDeadline,
        control: &Control,
    ) -> Result<Handled<P>, End> {
        let Some(state) = self.instances.remove(&key) else {
            // Deadlines are dropped with their instance: none should be left.
            self.timers.drop_instance(&key);
            return Ok(Handled::Dropped);
        };
        self.shared.metrics.deadlines_fired.add(1);
        match self
            .handle(key, state, Trigger::Deadline(&deadline), true, control)
            .await?
        {
            // A deadline is not an event of the log to park: under `Park`, one whose handler
            // fails is skipped, as under `Skip` (the instance keeps its state from before).
            Handled::Parked(error) => {
                tracing::warn!(process_manager = P::NAME, deadline = deadline.id(), error = %error, "skipping a failed deadline");
                self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                Ok(Handled::Dropped)
            }
            handled => Ok(handled),
        }
    }

    /// Runs the handler of an event or a deadline under the error policy.
    pub(super) async fn handle(
        &mut self,
        key: String,
        mut state: P,
        trigger: Trigger<'_>,
        existed: bool,
        control: &Control,
    ) -> Result<Handled<P>, End> {
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
            let (mut out, result) = match trigger {
                Trigger::Event(event) => {
                    let mut out =
                        Commands::new(P::NAME, key.clone(), event.position).at(event.timestamp);
                    let result = handle_event(&mut state, event, &mut out);
                    (out, result)
                }
                Trigger::Deadline(deadline) => {
                    let mut out = Commands::for_deadline(P::NAME, key.clone(), deadline);
                    let result = handle_deadline(&mut state, deadline, &mut out);
                    (out, result)
                }
            };
            let result = match out.take_error() {
                Some(e) => result.and(Err(ProjectionError::Decode(e))),
                None => result,
            };
            let error = match result {
                Ok(()) => return Ok(Handled::Ran(Step { key, state, out })),
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
            attempt += 1;
            match self.options.error_policy.on_failure(attempt, &error) {
                OnFailure::Stop(message) => return Err(End::Failed(message)),
                OnFailure::Park(message) => {
                    if existed {
                        self.instances.insert(key, restore(&before)?);
                    }
                    return Ok(Handled::Parked(message));
                }
                OnFailure::Skip => {
                    tracing::warn!(process_manager = P::NAME, at = %trigger.describe(), error = %error, "skipping");
                    self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                    if existed {
                        self.instances.insert(key, restore(&before)?);
                    }
                    return Ok(Handled::Dropped);
                }
                OnFailure::RetryAfter(wait) => {
                    state = restore(&before)?;
                    tracing::warn!(process_manager = P::NAME, at = %trigger.describe(), attempt, error = %error, "retrying");
                    if control.pause(wait).await {
                        return Err(End::Stopped);
                    }
                }
            }
        }
    }

    /// Dispatches the wave's commands until none is left (a rejection handler may send more),
    /// then puts the instances that did not finish back.
    pub(super) async fn flush(
        &mut self,
        wave: &mut Vec<Step<P>>,
        control: &Control,
    ) -> Result<(), End> {
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
            self.shared.metrics.commands_sent.add(batch.len() as u64);
            let outcomes = self.dispatch(&batch, control).await?;
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
                self.shared.metrics.rejections.add(1);
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
        for mut step in wave.drain(..) {
            if step.out.is_finished() {
                self.timers.drop_instance(&step.key);
            } else {
                self.timers.apply(&step.key, step.out.take_deadlines());
                self.instances.insert(step.key, step.state);
            }
        }
        Ok(())
    }

    /// Dispatches a batch concurrently; for each command, `None` when it committed, or the
    /// rejection's message. Store failures are retried with the same command id.
    async fn dispatch(
        &self,
        batch: &[(usize, SentCommand)],
        control: &Control,
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
            if control.pause(backoff(failures)).await {
                return Err(End::Stopped);
            }
        }
    }

    /// Saves the position handled since the last save, if any. A runner that lost its lease
    /// saves nothing: another process may hold it now, and its checkpoint wins.
    pub(super) async fn save_unsaved(&mut self, control: &Control) -> Result<(), End> {
        if !control.may_save() {
            self.unsaved = None;
            return Ok(());
        }
        if let Some(position) = self.unsaved {
            // A stop while waiting to retry leaves this page's commands, already answered, to
            // be answered again from the idempotency window by the next runner.
            let bytes = self.checkpoint_state()?;
            control.save(position, bytes).await?;
            self.unsaved = None;
            self.saved_at = Instant::now();
        }
        Ok(())
    }
}
