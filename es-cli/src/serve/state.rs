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
}
