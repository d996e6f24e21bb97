//! What a command works with: its output settings and stdout ([`Ctx`]), and the stores it
//! opens and closes.

use es_stores::{OpenOptions, OpenedStore};

use crate::error::{CliResult, StoreContext};
use crate::output::Out;

/// What every command gets: the output settings and stdout.
pub(crate) struct Ctx {
    /// `--json`.
    pub(crate) json: bool,
    /// Whether progress bars are drawn.
    pub(crate) progress: bool,
    /// Buffered stdout.
    pub(crate) out: Out,
}

/// Opens a store; `create` says whether a missing one is created (only targets are).
pub(crate) async fn open_store(url: &str, create: bool, ordered: bool) -> CliResult<OpenedStore> {
    // A store that is written (an import or copy target) is also filled in bulk: a rerun
    // writes again what a machine crash undid.
    // Every command reads a store at most once through: the pages an LMDB scan read are given
    // back as it goes, so a 1M-event export or copy does not hold the whole map resident.
    let options = OpenOptions::default()
        .create(create)
        .ordered(ordered)
        .bulk_load(ordered)
        .release_scanned_pages(true);
    let shown = es_stores::StoreUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| es_stores::redact(url));
    OpenedStore::open(url, &options)
        .await
        .doing(&format!("cannot open the store {shown}"))
}

/// Closes a store, reporting a failure.
pub(crate) async fn close_store(store: OpenedStore) -> CliResult<()> {
    let shown = store.url().to_string();
    store
        .close()
        .await
        .doing(&format!("closing the store {shown}"))
}
