//! Counts the kernel's background tasks (actors, snapshot writes, projection runners) so
//! shutdown can wait for them.
//!
//! A task must release its [`TaskToken`] last, after everything else it holds (the store
//! handles above all): shutdown returns as soon as the count reaches zero. Each task keeps its
//! token as the last field of the struct its future owns, since fields drop in declaration
//! order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

/// A cloneable counter of running tasks.
#[derive(Clone, Default)]
pub(crate) struct TaskTracker {
    inner: Arc<Inner>,
}

/// Held by a running task; dropping it marks the task finished (see the module docs for when
/// to drop it).
pub(crate) struct TaskToken {
    inner: Arc<Inner>,
}

impl TaskTracker {
    /// Counts one more running task, until the token is dropped.
    pub(crate) fn token(&self) -> TaskToken {
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        TaskToken {
            inner: self.inner.clone(),
        }
    }

    /// Waits until no task is running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for TaskToken {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}
