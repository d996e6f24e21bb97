//! [`SharedPages`]: the pages of the log that the partitions of one runner read, read from the
//! store once and handed to every partition that asks for the same page.
//!
//! The partitions of a projection or process manager all read the whole log (each keeps the
//! events of its keys), page by page from their own positions. Partitions that start at the
//! same position ask for the same pages in the same order: the first to ask reads the page,
//! the others (waiting on it if it is being read) get a copy. Each partition still advances,
//! handles and checkpoints on its own.
//!
//! Partitions that start at different positions (each saved its checkpoint after a page, and
//! a crash or a takeover came between two saves; or each read a short page of its own at the
//! head) fall back into step by themselves: a partition that asks from a position inside a
//! page another partition read gets the rest of that page, which ends where the others' next
//! page starts. Positions need not be dense for this (on PostgreSQL they are not: a position is
//! the writing transaction's id shifted left by 16 bits, plus the event's index).
//!
//! A page is read by a task of its own, not by the partition that asked first: the partitions
//! read their next page while they handle the current one, and a partition's handler (which
//! may block, as a synchronous handler does) never holds up a read the others are waiting for.
//!
//! A page the store answered is a fact of the log up to its last examined position (the
//! follower relies on that already: it moves its position there), so handing it out again
//! later, or its end from a later position, is what reading it again would give, minus events
//! appended since after its end, which the next page reads. A page at the head (nothing
//! examined) is not kept, nor is a failed read.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::store::{EventFilter, EventStore, FilteredPage, StoreError};

/// How many pages are kept at most (the oldest go first): a partition that falls further
/// behind reads its pages itself.
const PAGES_KEPT: usize = 8;

/// A page being read or read.
type Cell = Arc<OnceCell<Arc<FilteredPage>>>;

/// A page being read or read, and how many partitions took it.
#[derive(Default)]
struct Kept {
    page: Cell,
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
    /// of the one read for another partition when there is one, or the rest of one that
    /// started before `from` and reaches it, else read from `store` (the partitions of one
    /// runner share one filter and page size).
    pub(crate) async fn read(
        &self,
        store: &Arc<dyn EventStore>,
        from: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let limit = limit.max(1);
        // A page that started before `from` (read, or being read) may reach it: take its rest.
        let earlier = {
            let pages = self.pages.lock();
            pages
                .range(..from)
                .next_back()
                .map(|(start, kept)| (*start, kept.page.clone()))
        };
        if let Some((start, cell)) = earlier {
            let page = cell
                .get_or_try_init(|| read_page(store, start, limit, filter))
                .await;
            if let Ok(page) = page
                && page.scanned_to >= from
            {
                self.took(start, &cell, page);
                return Ok(rest(page, start, from));
            }
        }
        let cell = {
            let mut pages = self.pages.lock();
            let cell = pages.entry(from).or_default().page.clone();
            while pages.len() > PAGES_KEPT {
                pages.pop_first();
            }
            cell
        };
        let page = cell
            .get_or_try_init(|| read_page(store, from, limit, filter))
            .await?
            .clone();
        self.took(from, &cell, &page);
        Ok(FilteredPage::clone(&page))
    }

    /// A partition took (all or the rest of) the page kept at `start` in `cell`: a page every
    /// partition took is asked for no more, and one at the head is never kept (the next read
    /// must ask the store again).
    fn took(&self, start: u64, cell: &Cell, page: &FilteredPage) {
        let mut pages = self.pages.lock();
        if let Some(kept) = pages.get_mut(&start)
            && Arc::ptr_eq(&kept.page, cell)
        {
            kept.taken += 1;
            if page.scanned == 0 || kept.taken >= self.partitions {
                pages.remove(&start);
            }
        }
    }
}

/// Reads the page of `limit` events from `from` in a task of its own, so that it goes on
/// while the partition that asked for it handles events.
async fn read_page(
    store: &Arc<dyn EventStore>,
    from: u64,
    limit: usize,
    filter: EventFilter,
) -> Result<Arc<FilteredPage>, StoreError> {
    let store = store.clone();
    let read = tokio::spawn(async move { store.read_all_matching(from, limit, filter).await });
    match read.await {
        Ok(page) => page.map(Arc::new),
        Err(e) => Err(StoreError::Unavailable(format!(
            "the task reading a page of the log ended: {e}"
        ))),
    }
}

/// The part of `page` (read from `start`) from position `from` on (`from` is within it). How
/// many events it examined there is not known (only the accepted ones are kept): it is taken
/// in proportion to the positions it spans, which is exact on a dense log without holes, and
/// only feeds the count of filtered events in the metrics.
fn rest(page: &FilteredPage, start: u64, from: u64) -> FilteredPage {
    let events: Vec<_> = page
        .events
        .iter()
        .filter(|e| e.position >= from)
        .cloned()
        .collect();
    let span = page.scanned_to.saturating_sub(start) + 1;
    let part = page.scanned_to.saturating_sub(from) + 1;
    let estimate = (page.scanned as u128 * u128::from(part)).div_ceil(u128::from(span));
    let scanned = usize::try_from(estimate)
        .unwrap_or(page.scanned)
        .clamp(events.len().max(1), page.scanned.max(1));
    FilteredPage {
        events,
        scanned,
        scanned_to: page.scanned_to,
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
        let store: Arc<dyn EventStore> = Arc::new(store);
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

        // A partition that starts inside a kept page gets its rest, and is in step after it.
        let next = pages.read(&store, 5, 4, filter).await.unwrap();
        assert_eq!((next.scanned, next.scanned_to), (4, 8));
        let rest = pages.read(&store, 7, 4, filter).await.unwrap();
        assert_eq!((rest.scanned, rest.scanned_to), (2, 8));
        assert_eq!(rest.events, next.events[2..]);
        // A partition past the end of every kept page reads its own.
        let own = pages.read(&store, 9, 4, filter).await.unwrap();
        assert_eq!((own.scanned, own.scanned_to), (3, 11));

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

    #[test]
    fn the_rest_of_a_page_keeps_its_end_on_a_sparse_log() {
        let event = |position| {
            NewEvent::new("E", Vec::new()).record(
                StreamId::new("s", "1"),
                1,
                position,
                chrono::Utc::now(),
            )
        };
        // Positions as PostgreSQL gives them: two transactions, three events each.
        let base = 7 << 16;
        let positions = [base + 1, base + 2, base + 3, base + 65_537, base + 65_538];
        let page = FilteredPage {
            events: positions.iter().map(|p| event(*p)).collect(),
            scanned: 6,
            scanned_to: base + 65_539,
        };
        let tail = rest(&page, base + 1, base + 65_537);
        assert_eq!(tail.scanned_to, page.scanned_to);
        assert_eq!(tail.events, page.events[3..]);
        assert!((2..=6).contains(&tail.scanned), "{}", tail.scanned);
    }
}
