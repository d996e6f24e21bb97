//! The follower's loop: reads the log page by page after the runner's position, hands each page
//! to the runner, waits at the head for new events, and keeps the runner's lease.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{
    Checkpoint, CheckpointStore, EventFilter, EventStore, FilteredPage, StoreError,
};
use crate::tracker::TaskToken;

use super::control::Control;
use super::election::Elected;
use super::progress::{Progress, ProjectionPhase};
use super::retry::{End, retrying};

/// How long a follower waits before reading again when the head moved past what it could read
/// a moment ago (or the store publishes positions before they are readable).
const HEAD_AHEAD_POLL: Duration = Duration::from_millis(2);

/// A page of the log, read after the runner's position.
pub(crate) struct Page {
    /// The runner's position when the page was asked for: the page starts after it.
    pub(crate) after: u64,
    /// The head of the log the store had announced when the page was read.
    pub(crate) head: u64,
    /// The events the filter accepted, and how far the page reached.
    pub(crate) read: FilteredPage,
}

/// What a runner does with the log its follower reads: its own part, the rest being the
/// follower's.
pub(crate) trait Follow: Send + 'static {
    /// Handles a page of events (not empty: at least one event was scanned), publishing the
    /// new position in its [`Progress`] and saving it through `control`.
    fn page(
        &mut self,
        page: Page,
        control: &Control,
    ) -> impl Future<Output = Result<(), End>> + Send;

    /// The log has nothing after `position`; the follower waits for new events next.
    fn caught_up(
        &mut self,
        position: u64,
        control: &Control,
    ) -> impl Future<Output = Result<(), End>> + Send;

    /// This runner has just taken the lease over: resume from `checkpoint`, the one the
    /// previous holder saved (`None`: none was), dropping what it handled but did not save.
    fn resume(
        &mut self,
        checkpoint: Option<Checkpoint>,
    ) -> impl Future<Output = Result<(), End>> + Send;

    /// What, besides new events, should wake the runner while it waits at the head (a process
    /// manager's next deadline): when it completes, the follower reads again and calls
    /// [`Follow::caught_up`]. The default is nothing.
    fn alarm(&self) -> Option<Alarm> {
        None
    }

    /// The follower ended with `end`; called before the runner is reported stopped.
    fn finish(&mut self, end: &End, control: &Control) -> impl Future<Output = ()> + Send {
        let _ = (end, control);
        async {}
    }
}

/// What wakes a runner waiting at the head ([`Follow::alarm`]).
pub(crate) type Alarm = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a follower reads, and where it keeps its checkpoint.
pub(crate) struct Plan {
    /// What the runner is, for the log: `"projection"`, `"process manager"`.
    pub(crate) kind: &'static str,
    /// The log.
    pub(crate) store: Arc<dyn EventStore>,
    /// The events the runner wants; the others are skipped without being decoded.
    pub(crate) filter: EventFilter,
    /// Events read per page.
    pub(crate) batch: usize,
    /// How often to look for new events when the store announces none (a fallback).
    pub(crate) poll: Duration,
    /// The checkpoint's name (and the lease's).
    pub(crate) checkpoint: String,
    /// Where checkpoints go (`None`: positions in memory only, and no election).
    pub(crate) checkpoints: Option<Arc<dyn CheckpointStore>>,
    /// Whether the runner starts at a position it was given rather than from its checkpoint:
    /// then its first takeover of the lease keeps that position instead of reloading the
    /// checkpoint.
    pub(crate) given_position: bool,
    /// The share of its group's leases this process may hold, for a partition of a runner
    /// spread over processes (`None`: a runner on its own).
    pub(crate) gate: Option<Arc<super::ShareGate>>,
    /// The pages the partitions of its runner share (`None`: it reads on its own).
    pub(crate) pages: Option<Arc<super::SharedPages>>,
}

/// Spawns `runner`'s task on `runtime`: a follower made from `plan` drives it until it stops.
/// `token`, when given, is released after everything else the task holds.
pub(crate) fn spawn<F: Follow>(
    runtime: &tokio::runtime::Handle,
    plan: Plan,
    progress: Arc<Progress>,
    runner: F,
    token: Option<TaskToken>,
) {
    let control = Control::new(
        plan.checkpoint,
        plan.checkpoints,
        progress.stop_signal(),
        plan.gate,
    );
    let task = Task {
        runner,
        follower: Follower {
            kind: plan.kind,
            store: plan.store,
            filter: plan.filter,
            pages: plan.pages,
            ahead: None,
            batch: plan.batch.max(1),
            poll: plan.poll,
            resume_on_takeover: !plan.given_position,
            progress: progress.clone(),
            control,
        },
        _token: token,
    };
    progress.set_task(|| runtime.spawn(task.run()));
}

/// A runner's task: the runner and its follower.
struct Task<F> {
    runner: F,
    follower: Follower,
    /// Declared last, so it is released after the store handles (fields drop in order).
    _token: Option<TaskToken>,
}

impl<F: Follow> Task<F> {
    /// Follows the log until stopped or failed, then records why.
    async fn run(mut self) {
        let end = self.follower.follow(&mut self.runner).await;
        self.runner.finish(&end, &self.follower.control).await;
        // Before the runner counts as stopped: whoever waits for it (a shutdown) may then
        // count on the lease being free.
        self.follower.control.release_lease().await;
        let error = match end {
            End::Stopped => None,
            End::Failed(e) => {
                let kind = self.follower.kind;
                tracing::error!(runner = self.follower.control.name(), error = %e, "{kind} stopped");
                Some(e)
            }
        };
        self.follower.progress.finish(error);
    }
}

impl<F> Drop for Task<F> {
    /// A task that ends without recording why still reports that it stopped.
    fn drop(&mut self) {
        self.follower.progress.finish_unexpectedly();
    }
}

/// Reads the log for one runner.
struct Follower {
    kind: &'static str,
    store: Arc<dyn EventStore>,
    filter: EventFilter,
    /// The pages shared with the other partitions of its runner, if any.
    pages: Option<Arc<super::SharedPages>>,
    /// The page read ahead while the runner handled the previous one, and where it starts.
    ahead: Option<(u64, FilteredPage)>,
    batch: usize,
    poll: Duration,
    /// Whether taking the lease reloads the checkpoint. False until the first takeover when
    /// the runner was given a position to start at, which that first run honours.
    resume_on_takeover: bool,
    progress: Arc<Progress>,
    control: Control,
}

impl Follower {
    /// Follows the log until stopped or failed.
    async fn follow(&mut self, runner: &mut impl Follow) -> End {
        let mut head = self.store.subscribe();
        loop {
            if let Err(end) = self.step(runner, &mut head).await {
                return end;
            }
        }
    }

    /// Reads one page and hands it to the runner, or waits at the head.
    async fn step(
        &mut self,
        runner: &mut impl Follow,
        head: &mut watch::Receiver<u64>,
    ) -> Result<(), End> {
        if self.control.stopping() {
            return Err(End::Stopped);
        }
        self.ensure_lease(runner).await?;
        let after = self.progress.position();
        let next = after + 1;
        let read = match self.ahead.take() {
            Some((from, read)) if from == next => read,
            _ => {
                retrying(
                    self.control.name(),
                    || format!("reading the log at {next}"),
                    self.control.stop_signal(),
                    || self.read(next),
                )
                .await?
            }
        };
        if read.scanned == 0 {
            runner.caught_up(after, &self.control).await?;
            self.progress.set_phase(ProjectionPhase::CaughtUp);
            return self.wait(head, next, runner.alarm()).await;
        }
        self.progress.set_phase(ProjectionPhase::Running);
        let head = *head.borrow();
        if self.pages.is_none() {
            return runner.page(Page { after, head, read }, &self.control).await;
        }
        // A partition reads the next page (or waits for another partition's read of it) while
        // it handles this one; a failed or empty read ahead is dropped (read again next step).
        let from = read.scanned_to + 1;
        let page = Page { after, head, read };
        let (handled, ahead) = tokio::join!(runner.page(page, &self.control), self.read(from));
        handled?;
        self.ahead = ahead
            .ok()
            .filter(|read| read.scanned > 0)
            .map(|read| (from, read));
        Ok(())
    }

    /// Reads the page of the log from position `from`: through the pages shared with the
    /// other partitions, if any.
    async fn read(&self, from: u64) -> Result<FilteredPage, StoreError> {
        match &self.pages {
            Some(pages) => pages.read(&self.store, from, self.batch, self.filter).await,
            None => {
                self.store
                    .read_all_matching(from, self.batch, self.filter)
                    .await
            }
        }
    }

    /// Waits at the head until the store announces position `next`, a stop is requested, the
    /// runner's alarm goes off, or the poll interval passed.
    async fn wait(
        &self,
        head: &mut watch::Receiver<u64>,
        next: u64,
        alarm: Option<Alarm>,
    ) -> Result<(), End> {
        head.borrow_and_update();
        if *head.borrow() >= next {
            // The head moved past what was readable a moment ago: poll briefly.
            if self.control.pause(HEAD_AHEAD_POLL).await {
                return Err(End::Stopped);
            }
            return Ok(());
        }
        let mut stop = self.control.stop_signal().clone();
        let alarm = async {
            match alarm {
                Some(alarm) => alarm.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = head.wait_for(|h| *h >= next) => Ok(()),
            _ = stop.wait_for(|s| *s) => Err(End::Stopped),
            () = tokio::time::sleep(self.poll) => Ok(()),
            () = alarm => Ok(()),
        }
    }

    /// Makes sure the runner may run (see [`Control::ensure_lease`]); after taking the lease
    /// over, the runner resumes from the checkpoint the previous holder saved.
    async fn ensure_lease(&mut self, runner: &mut impl Follow) -> Result<(), End> {
        match self.control.ensure_lease(&self.progress).await? {
            None => return Ok(()),
            Some(Elected::NotNeeded) => {}
            Some(Elected::TookOver) => {
                if self.resume_on_takeover {
                    let checkpoint = self.control.load().await?;
                    runner.resume(checkpoint).await?;
                }
                self.resume_on_takeover = true;
            }
        }
        self.progress.set_standby(false);
        Ok(())
    }
}
