//! Group commit: one writer thread per store commits everyone's writes, many at a time.
//!
//! Callers queue requests on a bounded channel (a full queue makes them wait: back-pressure).
//! The writer thread blocks for the first request, then drains what else is queued without
//! waiting, up to [`Committer::MAX_GROUP`] requests and about [`Committer::MAX_GROUP_BYTES`]
//! bytes, and hands the group to the backend's [`Committer::commit`], which writes it durably
//! once and answers each request. Under load the groups grow by themselves, so many writes
//! share one flush.
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
    /// backend pipelines its flushes) at the next [`Committer::commit`] or [`Committer::idle`].
    fn commit(&mut self, group: Vec<Self::Request>);

    /// Called when the queue is empty, before the thread waits for the next request: a
    /// backend that defers answers until a later flush must flush and answer now.
    fn idle(&mut self) {}

    /// Runs once after the queue was closed and drained; its error is what
    /// [`WriterThread::stop`] returns.
    fn finish(self) -> Result<(), StoreError>;
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
    loop {
        let first = match carry.take() {
            Some(request) => request,
            None => match requests.try_recv() {
                Ok(request) => request,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    committer.idle();
                    match requests.blocking_recv() {
                        Some(request) => request,
                        None => break,
                    }
                }
            },
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
        committer.commit(group);
    }
    committer.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the groups it is given; requests are their sizes.
    struct Recorder {
        groups: Arc<Mutex<Vec<Vec<usize>>>>,
        /// Told when the first group arrives, which is then held until the gate opens.
        entered: Option<tokio::sync::oneshot::Sender<()>>,
        gate: std::sync::mpsc::Receiver<()>,
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
            if let Ok(mut groups) = self.groups.lock() {
                groups.push(group);
            }
        }

        fn finish(self) -> Result<(), StoreError> {
            Err(StoreError::Closed)
        }
    }

    #[tokio::test]
    async fn groups_are_bounded_by_count_and_bytes_and_everything_queued_is_committed()
    -> Result<(), StoreError> {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = std::sync::mpsc::channel();
        let (entered, first_group) = tokio::sync::oneshot::channel();
        let mut writer = WriterThread::spawn(
            "es-test-writer",
            16,
            Recorder {
                groups: Arc::clone(&groups),
                entered: Some(entered),
                gate,
            },
            Histogram::noop(),
        )?;
        writer.send(1).await?;
        // Wait until the writer holds the first group, so the rest queue up behind it.
        first_group.await.map_err(|_| StoreError::Closed)?;
        for size in [1, 1, 1, 1, 60, 60, 200, 1] {
            writer.send(size).await?;
        }
        let _ = open.send(());
        // `finish`'s error is what `stop` reports.
        assert!(matches!(writer.stop(), Err(StoreError::Closed)));
        let groups = groups.lock().map_err(|_| StoreError::Closed)?.clone();
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
}
