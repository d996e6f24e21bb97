//! [`SharedPages`]: the pages of the log that the partitions of one runner read, read from the
//! store once and handed to every partition that asks for the same page.
//!
//! The partitions of a projection or process manager all read the whole log (each keeps the
//! events of its keys), page by page from their own positions. A page ends where it ends
//! whatever partition reads it, so partitions that start at the same position ask for the
//! same pages in the same order: the first to ask reads the page, the others (waiting on it
//! if it is being read) get a copy. Each partition still advances, handles and checkpoints on
//! its own; a partition that falls behind (or starts elsewhere) reads the pages it asks for
//! itself, sharing them with whoever asks next.
//!
//! A partition's follower also reads its next page while the partition handles the current
//! one (the first partition to get there reads it, the others wait for that read), so that
//! reading the log overlaps with handling it.
//!
//! Partitions that start at different positions (each saved its checkpoint after a page of its
//! own choosing) would never ask for the same page again: a page that starts after a multiple
//! of the page size is therefore cut to end at the next multiple, so that the partitions
//! fall into the same pages once they reach the same position.
//!
//! A page the store answered is a fact of the log up to its last examined position (the
//! follower relies on that already: it moves its position there), so handing it out again
//! later is what reading it again would give, minus events appended since after its end,
//! which the next page reads. A page at the head (nothing examined) is not kept, nor is a
//! failed read.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::store::{EventFilter, EventStore, FilteredPage, StoreError};

/// How many pages are kept at most (the oldest go first): a partition that falls further
/// behind reads its pages itself.
const PAGES_KEPT: usize = 8;

/// A page being read or read, and how many partitions took it.
#[derive(Default)]
struct Kept {
    page: Arc<OnceCell<Arc<FilteredPage>>>,
    taken: usize,
}

/// The pages one runner's partitions share, by the position they start at.
pub(crate) struct SharedPages {
    /// How many partitions share them: a page every one of them took is dropped.
    partitions: usize,
    pages: Mutex<BTreeMap<u64, Kept>>,
}

impl SharedPages {
    /// The pages of `partitions` partitions.
    pub(crate) fn new(partitions: usize) -> Self {
        Self {
            partitions,
            pages: Mutex::new(BTreeMap::new()),
        }
    }

    /// The page of up to `limit` events examined from position `from` through `filter`: a copy
    /// of the one read for another partition when there is one, else read from `store` (the
    /// partitions of one runner share one filter and page size). A page that starts after a
    /// multiple of `limit` ends at the next one (see the module docs).
    pub(crate) async fn read(
        &self,
        store: &dyn EventStore,
        from: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let limit = limit.max(1);
        let limit = limit - ((from.saturating_sub(1)) % limit as u64) as usize;
        let cell = {
            let mut pages = self.pages.lock();
            let cell = pages.entry(from).or_default().page.clone();
            while pages.len() > PAGES_KEPT {
                pages.pop_first();
            }
            cell
        };
        let page = cell
            .get_or_try_init(|| async {
                store
                    .read_all_matching(from, limit, filter)
                    .await
                    .map(Arc::new)
            })
            .await?
            .clone();
        let mut pages = self.pages.lock();
        if let Some(kept) = pages.get_mut(&from)
            && Arc::ptr_eq(&kept.page, &cell)
        {
            kept.taken += 1;
            // At the head the next read must ask the store again; a page every partition
            // took is asked for no more.
            if page.scanned == 0 || kept.taken >= self.partitions {
                pages.remove(&from);
            }
        }
        drop(pages);
        Ok(FilteredPage::clone(&page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::store::{ExpectedVersion, NewEvent, StreamId};

    #[tokio::test]
    async fn a_page_is_read_once_for_every_partition_and_the_head_is_never_kept() {
        let store = MemoryStore::new();
        // Positions 1 and 2 in stream `s/0`, 3 to 11 in streams of their own.
        for i in 0..10 {
            let count = if i == 0 { 2 } else { 1 };
            store
                .append(
                    &StreamId::new("s", format!("{i}")),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("E", b"{}".to_vec()); count],
                )
                .await
                .unwrap();
        }
        let pages = SharedPages::new(3);
        let filter = EventFilter::all();
        let first = pages.read(&store, 1, 4, filter).await.unwrap();
        assert_eq!(first.scanned_to, 4);
        // The store changes under the page (the first event is removed): a partition asking
        // for the same page gets the copy read for the first one, not a new read.
        store
            .truncate_stream(&StreamId::new("s", "0"), 2)
            .await
            .unwrap();
        let fresh = store.read_all_matching(1, 4, filter).await.unwrap();
        assert_ne!(fresh, first);
        let again = pages.read(&store, 1, 4, filter).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(pages.pages.lock().len(), 1);
        // The third partition takes it too, and it is dropped.
        assert_eq!(pages.read(&store, 1, 4, filter).await.unwrap(), first);
        assert!(pages.pages.lock().is_empty());

        // A partition that starts elsewhere is brought to the next page boundary.
        let short = pages.read(&store, 3, 4, filter).await.unwrap();
        assert_eq!((short.scanned, short.scanned_to), (2, 4));

        // At the head nothing is kept, and an append after it is seen by the next read.
        let head = pages.read(&store, 12, 4, filter).await.unwrap();
        assert_eq!(head.scanned, 0);
        assert!(!pages.pages.lock().contains_key(&12));
        store
            .append(
                &StreamId::new("s", "new"),
                ExpectedVersion::Any,
                vec![NewEvent::new("E", b"{}".to_vec())],
            )
            .await
            .unwrap();
        let next = pages.read(&store, 12, 4, filter).await.unwrap();
        assert_eq!(next.scanned_to, 12);
    }
}
