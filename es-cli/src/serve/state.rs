//! What every request handler of the console gets.

use std::sync::Arc;

use es_stores::OpenedStore;

/// What every request handler gets.
#[derive(Clone)]
pub(super) struct App {
    pub(super) store: OpenedStore,
    /// One `verify` at a time: it reads the whole store.
    pub(super) verifying: Arc<tokio::sync::Mutex<()>>,
    /// The host names a request may name in its `Host` header, when listening on loopback
    /// (so that a web page elsewhere cannot read the store through DNS rebinding).
    pub(super) loopback_port: Option<u16>,
    /// Becomes `true` when the server is told to stop: the live streams end then, so that the
    /// graceful shutdown does not wait for browsers that would follow the log forever.
    pub(super) stopping: tokio::sync::watch::Receiver<bool>,
    /// Whether the dead-letter retry and skip routes exist (`--allow-writes`).
    pub(super) allow_writes: bool,
}

impl App {
    /// Completes when the server is told to stop.
    pub(super) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut stopping = self.stopping.clone();
        async move {
            // An error means the sender is gone: the server is stopping too.
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    }
}
