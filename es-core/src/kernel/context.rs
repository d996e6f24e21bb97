//! What an actor is given: the stores, the settings it reads, the task tracker and the clock.
//!
//! Every actor of a kernel shares one [`Context`]. It is the only thing of the kernel that holds
//! the stores on an actor's behalf, so once every actor has dropped its `Arc<Context>` (see
//! `TaskToken` for the order) no actor holds a store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::store::{EventStore, SnapshotStore};

use crate::tracker::{TaskToken, TaskTracker};

/// The settings an actor reads.
#[derive(Debug, Clone)]
pub(crate) struct ActorConfig {
    /// Snapshot after each commit that crosses a multiple of this (0: never).
    pub(crate) snapshot_every: u64,
    /// Snapshots kept per stream.
    pub(crate) snapshots_kept: usize,
    /// Commands that may wait in one mailbox before dispatchers wait.
    pub(crate) mailbox: usize,
    /// The most commands handled in one commit.
    pub(crate) max_batch: usize,
    /// Re-runs of a batch after version conflicts.
    pub(crate) conflict_retries: u32,
    /// Retries of a batch while the store is unavailable.
    pub(crate) store_retries: u32,
    /// Events read per page while rehydrating.
    pub(crate) replay_page: usize,
    /// Commands per aggregate whose ids are remembered for idempotency (0: off).
    pub(crate) dedup_window: usize,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 0,
            snapshots_kept: 2,
            mailbox: 1024,
            max_batch: 512,
            conflict_retries: 5,
            store_retries: 3,
            replay_page: 4096,
            dedup_window: 1000,
        }
    }
}

/// The kernel's tuning: what actors read, and what the passivation sweeper reads.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The actors' settings.
    pub(crate) actor: ActorConfig,
    /// Idle time after which an actor is passivated.
    pub(crate) passivate_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            actor: ActorConfig::default(),
            passivate_after: Duration::from_secs(5),
        }
    }
}

/// The monotonic clock used for idle times: microseconds since the kernel started (the wall
/// clock that stamps events is [`Context::clock`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleClock {
    epoch: Instant,
}

impl IdleClock {
    pub(crate) fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Microseconds since the kernel started.
    pub(crate) fn now_micros(self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// What every actor of one kernel shares.
pub(crate) struct Context {
    /// Where the actors spawn (the runtime the kernel was built in).
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) event_store: Arc<dyn EventStore>,
    pub(crate) snapshot_store: Option<Arc<dyn SnapshotStore>>,
    pub(crate) config: ActorConfig,
    /// Stamps events and snapshots.
    pub(crate) clock: Arc<dyn Clock>,
    /// Measures idle time for passivation.
    pub(crate) idle: IdleClock,
    /// The running actors and snapshot writes, which shutdown waits for.
    tasks: TaskTracker,
    /// The number of running actors.
    live: AtomicUsize,
    /// Raised by shutdown; no actor starts after it.
    shut_down: AtomicBool,
}

impl Context {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        event_store: Arc<dyn EventStore>,
        snapshot_store: Option<Arc<dyn SnapshotStore>>,
        config: ActorConfig,
        clock: Arc<dyn Clock>,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            runtime,
            event_store,
            snapshot_store,
            config,
            clock,
            idle: IdleClock::start(),
            tasks,
            live: AtomicUsize::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Begins shutdown: from now on [`Context::start_actor`] refuses.
    pub(crate) fn begin_shutdown(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
    }

    /// Registers an actor about to start, or `None` once shutdown has begun.
    ///
    /// The token is taken before the flag is read, and shutdown raises the flag before it waits
    /// for the tracker to be idle: either this sees the flag, or shutdown waits for the actor.
    pub(crate) fn start_actor(&self) -> Option<TaskToken> {
        let token = self.tasks.token();
        if self.is_shut_down() {
            return None;
        }
        self.live.fetch_add(1, Ordering::SeqCst);
        Some(token)
    }

    /// Records that an actor stopped (its token is released when the actor is dropped).
    pub(crate) fn actor_stopped(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }

    /// The number of running actors.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until every actor and background task has ended and dropped its handles.
    pub(crate) async fn wait_idle(&self) {
        self.tasks.wait_idle().await;
    }

    /// A token for a background task started by a running actor (whose own token keeps
    /// shutdown waiting, so this one is always counted).
    pub(crate) fn task_token(&self) -> TaskToken {
        self.tasks.token()
    }
}
