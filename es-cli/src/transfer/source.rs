//! The reading side of a transfer: the source's log read a page ahead, and its size.

use std::sync::Arc;

use es_core::store::{RecordedEvent, Store, StoreError};
use es_stores::OpenedStore;
use tokio::sync::mpsc;

use crate::error::{CliResult, StoreContext};

/// Reads the log from `from` in pages on a task of its own, one page ahead of the consumer.
pub(super) fn read_ahead(
    store: Arc<dyn Store>,
    from: u64,
    page: usize,
) -> mpsc::Receiver<Result<Vec<RecordedEvent>, StoreError>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut next = from.max(1);
        loop {
            let result = store.read_all(next, page).await;
            let end = match &result {
                Ok(events) => match events.last() {
                    Some(last) => {
                        next = last.position + 1;
                        false
                    }
                    None => true,
                },
                Err(_) => true,
            };
            if tx.send(result).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

/// The number of events of a gapless store (its head), or `None` for PostgreSQL.
pub(super) async fn known_count(store: &OpenedStore) -> CliResult<Option<u64>> {
    if store.url().backend() == "postgres" {
        return Ok(None);
    }
    Ok(Some(
        store
            .store()
            .head_position()
            .await
            .doing("reading the head")?,
    ))
}
