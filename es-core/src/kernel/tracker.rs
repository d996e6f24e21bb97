//! Counts the kernel's background tasks (actors, snapshot writes) so shutdown can wait for them.

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

/// Held by a running task; dropping it marks the task finished.
pub(crate) struct TaskToken {
    inner: Arc<Inner>,
}

impl TaskTracker {
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
