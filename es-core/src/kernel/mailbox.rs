//! An actor's mailbox: a bounded queue behind a short lock, with the signals around it.
//!
//! It is deliberately small: an idle actor costs its mailbox (a few hundred bytes, no buffer
//! until the first message), not a channel's preallocated block and a timer. Passivation is
//! driven by the kernel's sweeper reading `last_active`, so an idle actor never wakes up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Signals shared by all the mailboxes of one registry (rarely used, so not worth a copy per
/// actor): room in a full mailbox, and an actor having stopped. Waiters re-check their own
/// mailbox after each wake-up.
#[derive(Default)]
pub(crate) struct Signals {
    room: Notify,
    stopped: Notify,
}

/// The queue and the actor's life signals.
pub(crate) struct Mailbox<M> {
    queue: Mutex<Queue<M>>,
    capacity: usize,
    /// Wakes the actor when a message arrives.
    ready: Notify,
    /// Raised once the actor has fully stopped.
    stopped: AtomicBool,
    /// The kernel clock (µs) of the actor's last activity, read by the passivation sweeper.
    last_active: AtomicU64,
}

/// The queued messages: the first one inline, so that an actor receiving one command at a time
/// never allocates a buffer.
struct Queue<M> {
    head: Option<M>,
    rest: VecDeque<M>,
    closed: bool,
}

impl<M> Queue<M> {
    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    fn push(&mut self, message: M) {
        if self.head.is_none() {
            self.head = Some(message);
        } else {
            self.rest.push_back(message);
        }
    }

    /// Moves up to `max` messages into `out`, oldest first.
    fn drain_into(&mut self, max: usize, out: &mut Vec<M>) {
        let Some(head) = self.head.take() else {
            return;
        };
        out.push(head);
        let n = self.rest.len().min(max.saturating_sub(1));
        out.extend(self.rest.drain(..n));
        self.head = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > 64 {
            self.rest.shrink_to(8);
        }
    }

    fn take_all(&mut self) -> Vec<M> {
        let mut all = Vec::with_capacity(self.len());
        all.extend(self.head.take());
        all.extend(self.rest.drain(..));
        all
    }
}

/// Why a message could not be queued.
enum PushError<M> {
    Closed(M),
    Full(M),
}

impl<M> Mailbox<M> {
    pub(crate) fn new(capacity: usize, now: u64) -> Self {
        Self {
            queue: Mutex::new(Queue {
                head: None,
                rest: VecDeque::new(),
                closed: false,
            }),
            capacity,
            ready: Notify::new(),
            stopped: AtomicBool::new(false),
            last_active: AtomicU64::new(now),
        }
    }

    fn try_push(&self, message: M) -> Result<(), PushError<M>> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(PushError::Closed(message));
        }
        if queue.len() >= self.capacity {
            return Err(PushError::Full(message));
        }
        queue.push(message);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues a message, waiting for room when the queue is full. Gives the message back if
    /// the mailbox is closed (the actor stopped).
    pub(crate) async fn send(&self, signals: &Signals, mut message: M) -> Result<(), M> {
        loop {
            match self.try_push(message) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(m)) => return Err(m),
                Err(PushError::Full(m)) => message = m,
            }
            let room = signals.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let queue = self.queue.lock();
                if queue.closed || queue.len() < self.capacity {
                    continue;
                }
            }
            room.await;
        }
    }

    /// Queues a control message even when the queue is full (capacity bounds commands, not the
    /// kernel's own requests). Returns `false` if the mailbox is closed.
    pub(crate) fn push_control(&self, message: M) -> bool {
        let mut queue = self.queue.lock();
        if queue.closed {
            return false;
        }
        queue.push(message);
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// Queues a message only if the queue is empty and open (for the sweeper's passivation
    /// offer, which must not race ahead of real work).
    pub(crate) fn offer_if_idle(&self, message: M) -> bool {
        let mut queue = self.queue.lock();
        if queue.closed || !queue.is_empty() {
            return false;
        }
        queue.push(message);
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// Waits for messages and moves up to `max` of them into `batch`.
    pub(crate) async fn recv_batch(&self, signals: &Signals, max: usize, batch: &mut Vec<M>) {
        loop {
            {
                let mut queue = self.queue.lock();
                if !queue.is_empty() {
                    let was_full = queue.len() >= self.capacity;
                    queue.drain_into(max, batch);
                    drop(queue);
                    if was_full {
                        signals.room.notify_waiters();
                    }
                    return;
                }
            }
            // A `notify_one` before this point left a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }

    /// Closes the mailbox and returns what was still queued. Later sends fail.
    pub(crate) fn close(&self, signals: &Signals) -> Vec<M> {
        let mut queue = self.queue.lock();
        queue.closed = true;
        let rest = queue.take_all();
        drop(queue);
        signals.room.notify_waiters();
        rest
    }

    /// Records activity at kernel time `now`.
    pub(crate) fn touch(&self, now: u64) {
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// The kernel time of the last activity.
    pub(crate) fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// Marks the actor as fully stopped and wakes whoever waits for it.
    pub(crate) fn mark_stopped(&self, signals: &Signals) {
        self.stopped.store(true, Ordering::SeqCst);
        signals.stopped.notify_waiters();
    }

    /// Waits until the actor has fully stopped.
    pub(crate) async fn wait_stopped(&self, signals: &Signals) {
        loop {
            let stopped = signals.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            stopped.await;
        }
    }
}
