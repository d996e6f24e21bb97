//! Group commit: one writer thread per store commits everyone's writes, many at a time.
//!
//! Callers queue requests on a bounded channel (a full queue makes them wait: back-pressure).
//! The writer thread blocks for the first request, then drains what else is queued without
//! waiting, up to [`Committer::MAX_GROUP`] requests and about [`Committer::MAX_GROUP_BYTES`]
//! bytes, and hands the group to the backend's [`Committer::commit`], which writes it durably
//! once and answers each request. Under load the groups grow by themselves, so many writes
//! share one flush.
//!
//! A backend may pipeline its flushes: a commit's answers then wait for the next commit's flush
//! (one flush per commit instead of two). Its callers, once answered, send their next requests,
//! but the next commit has already started without them: they wait for the one after, and a
//! caller that sends one request after another gets into every other commit at best. So before
//! a commit that would be small (fewer requests wait than [`SETTLE_NUM`]/[`SETTLE_DEN`] of the
//! group just committed, none included) the writer has the backend flush and answer at once
//! ([`Committer::settle`]): the callers it answers are back in time for the next commit.
//! Measured with LMDB under 64 clients each sending one command after another (W1): groups of
//! 21 requests became groups of 28, and the commands per second rose by about a tenth.
//!
//! [`WriterThread`] owns the thread's lifecycle: it is spawned with a name, and stopped (by
//! [`WriterThread::stop`] or when dropped) by closing the queue (the thread commits what is
//! still queued and then calls [`Committer::finish`]) and joining it; a panic on the thread is
//! reported, and logged when the writer is dropped.

use std::thread::JoinHandle;

use es_core::store::StoreError;
use metrics::Histogram;
use tokio::sync::mpsc;

/// The backend's side of a writer thread: how to commit one group.
pub(crate) trait Committer: Send + 'static {
    /// One queued write, with the channel its answer goes to.
    type Request: Send + 'static;

    /// The most requests committed together.
    const MAX_GROUP: usize = 4096;
    /// The most bytes (by [`Committer::size`]) committed together; a single larger request
    /// still runs, alone.
    const MAX_GROUP_BYTES: usize = 32 << 20;

    /// About how many bytes `request` writes (for [`Committer::MAX_GROUP_BYTES`]).
    fn size(request: &Self::Request) -> usize;

    /// Commits one group (in queue order) and answers every request of it, now or (when the
    /// backend pipelines its flushes) at the next [`Committer::commit`] or [`Committer::settle`].
    fn commit(&mut self, group: Vec<Self::Request>);

    /// Called before a commit that would be small (see the module docs), and always before the
    /// thread waits for a request on an empty queue: a backend that defers answers until a later
    /// flush must flush and answer now.
    fn settle(&mut self) {}

    /// Runs once after the queue was closed and drained; its error is what
    /// [`WriterThread::stop`] returns.
    fn finish(self) -> Result<(), StoreError>;
}

/// With [`SETTLE_DEN`]: the writer settles (see the module docs) before a commit when fewer
/// requests wait than `SETTLE_NUM / SETTLE_DEN` of the group it committed last. Measured on W1
/// with LMDB (64 clients): 4/5 was better than 1/2 (too few settles) and than 3/2 (a flush
/// more for groups that were large enough).
const SETTLE_NUM: usize = 4;
/// See [`SETTLE_NUM`].
const SETTLE_DEN: usize = 5;

/// Whether the writer settles before its next commit: `waiting` requests are queued and the last
/// group held `last`.
fn settles(waiting: usize, last: usize) -> bool {
    waiting == 0 || waiting.saturating_mul(SETTLE_DEN) < last.saturating_mul(SETTLE_NUM)
}

/// A writer thread and the sending side of its queue; dropping it stops the thread.
pub(crate) struct WriterThread<R> {
    requests: mpsc::Sender<R>,
    /// `None` once stopped.
    thread: Option<JoinHandle<Result<(), StoreError>>>,
    name: &'static str,
}

impl<R: Send + 'static> WriterThread<R> {
    /// Starts thread `name` committing the requests of a queue of `capacity` with `committer`,
    /// recording the size of each group in `group_size`.
    pub(crate) fn spawn<C>(
        name: &'static str,
        capacity: usize,
        committer: C,
        group_size: Histogram,
    ) -> Result<Self, StoreError>
    where
        C: Committer<Request = R>,
    {
        let (requests, receiver) = mpsc::channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(committer, receiver, group_size))
            .map_err(|e| StoreError::io(format!("starting the {name} thread"), e))?;
        Ok(Self {
            requests,
            thread: Some(thread),
            name,
        })
    }
}

impl<R> WriterThread<R> {
    /// Queues `request` when the queue has room (no waiting, nothing to poll): `Ok(None)`;
    /// gives it back as `Ok(Some(..))` when the queue is full, to be sent with
    /// [`WriterThread::send`]. [`StoreError::Closed`] when the writer thread has stopped.
    pub(crate) fn try_send(&self, request: R) -> Result<Option<R>, StoreError> {
        match self.requests.try_send(request) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(request)) => Ok(Some(request)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Closed),
        }
    }

    /// Queues `request`, waiting while the queue is full. [`StoreError::Closed`] when the
    /// writer thread has stopped (it panicked).
    pub(crate) async fn send(&self, request: R) -> Result<(), StoreError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Closes the queue and waits until the thread committed what was queued and stopped;
    /// returns the error it stopped with. Blocks the calling thread for the groups still queued
    /// (plus [`Committer::finish`]). Stopping again does nothing.
    pub(crate) fn stop(&mut self) -> Result<(), StoreError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        // The queue closes with its last sender: swap ours for one of a channel already closed.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.requests, closed));
        thread.join().unwrap_or_else(|_| {
            Err(StoreError::Backend {
                backend: "es-stores",
                message: format!("the {} thread panicked", self.name),
            })
        })
    }
}

impl<R> Drop for WriterThread<R> {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(thread = self.name, %error, "the writer stopped with an error");
        }
    }
}

/// The writer thread's loop. [`Committer::finish`] runs after the queue closed, so a backend
/// that defers answers answers the last ones there.
fn run<C: Committer>(
    mut committer: C,
    mut requests: mpsc::Receiver<C::Request>,
    group_size: Histogram,
) -> Result<(), StoreError> {
    let mut carry = None;
    // The size of the group committed last.
    let mut last = 0;
    loop {
        let first = match carry.take() {
            Some(request) => request,
            None => {
                let settled = settles(requests.len(), last);
                if settled {
                    committer.settle();
                }
                match requests.try_recv() {
                    Ok(request) => request,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // A request counted by `len` may not be readable yet: settle before
                        // blocking all the same.
                        if !settled {
                            committer.settle();
                        }
                        match requests.blocking_recv() {
                            Some(request) => request,
                            None => break,
                        }
                    }
                }
            }
        };
        let mut bytes = C::size(&first);
        let mut group = vec![first];
        while group.len() < C::MAX_GROUP && bytes < C::MAX_GROUP_BYTES {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            let size = C::size(&request);
            if bytes.saturating_add(size) > C::MAX_GROUP_BYTES {
                carry = Some(request);
                break;
            }
            bytes += size;
            group.push(request);
        }
        group_size.record(group.len() as f64);
        last = group.len();
        committer.commit(group);
    }
    committer.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the writer asked of its committer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        /// A group, by the sizes of its requests.
        Commit(Vec<usize>),
        Settle,
    }

    /// Records what it is asked; requests are their sizes.
    struct Recorder {
        calls: Arc<Mutex<Vec<Call>>>,
        /// Told when the first group arrives, which is then held until the gate opens.
        entered: Option<tokio::sync::oneshot::Sender<()>>,
        gate: std::sync::mpsc::Receiver<()>,
    }

    impl Recorder {
        fn record(&self, call: Call) {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(call);
            }
        }
    }

    impl Committer for Recorder {
        type Request = usize;
        const MAX_GROUP: usize = 3;
        const MAX_GROUP_BYTES: usize = 100;

        fn size(request: &usize) -> usize {
            *request
        }

        fn commit(&mut self, group: Vec<usize>) {
            if let Some(entered) = self.entered.take() {
                // Hold the first group until the test has queued the rest.
                let _ = entered.send(());
                let _ = self.gate.recv();
            }
            self.record(Call::Commit(group));
        }

        fn settle(&mut self) {
            self.record(Call::Settle);
        }

        fn finish(self) -> Result<(), StoreError> {
            Err(StoreError::Closed)
        }
    }

    /// Sends a request of size 1, and once the writer holds it as its first group, the requests
    /// of `sizes`; then stops the writer. What the writer asked from its first commit on (whether
    /// it settled before that depends on when its thread started).
    async fn calls_for(sizes: &[usize]) -> Result<Vec<Call>, StoreError> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = std::sync::mpsc::channel();
        let (entered, first_group) = tokio::sync::oneshot::channel();
        let mut writer = WriterThread::spawn(
            "es-test-writer",
            16,
            Recorder {
                calls: Arc::clone(&calls),
                entered: Some(entered),
                gate,
            },
            Histogram::noop(),
        )?;
        writer.send(1).await?;
        // Wait until the writer holds the first group, so the rest queue up behind it.
        first_group.await.map_err(|_| StoreError::Closed)?;
        for &size in sizes {
            writer.send(size).await?;
        }
        let _ = open.send(());
        // `finish`'s error is what `stop` reports.
        assert!(matches!(writer.stop(), Err(StoreError::Closed)));
        let calls = calls.lock().map_err(|_| StoreError::Closed)?.clone();
        let first = calls
            .iter()
            .position(|c| matches!(c, Call::Commit(_)))
            .unwrap_or(calls.len());
        Ok(calls[first..].to_vec())
    }

    #[tokio::test]
    async fn groups_are_bounded_by_count_and_bytes_and_everything_queued_is_committed()
    -> Result<(), StoreError> {
        let calls = calls_for(&[1, 1, 1, 1, 60, 60, 200, 1]).await?;
        let groups: Vec<Vec<usize>> = calls
            .into_iter()
            .filter_map(|c| match c {
                Call::Commit(group) => Some(group),
                Call::Settle => None,
            })
            .collect();
        assert_eq!(
            groups,
            vec![
                vec![1],
                vec![1, 1, 1],
                vec![1, 60],
                vec![60],
                vec![200],
                vec![1]
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_writer_settles_before_a_small_group_and_on_an_empty_queue()
    -> Result<(), StoreError> {
        use Call::{Commit, Settle};
        // After [1], five wait (no settle); after [1, 1, 1] two wait, fewer than 4/5 of three
        // (settle); after [1, 1] none (settle).
        assert_eq!(
            calls_for(&[1; 5]).await?,
            vec![
                Commit(vec![1]),
                Commit(vec![1, 1, 1]),
                Settle,
                Commit(vec![1, 1]),
                Settle
            ]
        );
        // As many waiting as were committed, or 4/5 of them: no settle until the queue is empty.
        assert_eq!(
            calls_for(&[1, 1, 1, 1, 60, 60, 200, 1]).await?,
            vec![
                Commit(vec![1]),
                Commit(vec![1, 1, 1]),
                Commit(vec![1, 60]),
                Commit(vec![60]),
                Commit(vec![200]),
                Commit(vec![1]),
                Settle
            ]
        );
        Ok(())
    }

    #[test]
    fn settles_below_four_fifths_of_the_last_group() {
        assert!(settles(0, 0));
        assert!(settles(0, 10));
        assert!(!settles(1, 0));
        assert!(!settles(8, 10));
        assert!(settles(7, 10));
        assert!(!settles(1, 1));
        assert!(!settles(usize::MAX, usize::MAX));
    }
}
