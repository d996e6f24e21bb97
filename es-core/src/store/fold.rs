//! Bounded reads folded page by page: [`fold_all`] and [`fold_stream`].

use std::ops::{Bound, RangeBounds};

use super::error::StoreError;
use super::id::StreamId;
use super::record::RecordedEvent;
use super::traits::EventStore;

/// The page size [`fold_all`] and [`fold_stream`] read in.
pub const FOLD_PAGE: usize = 1024;

/// The first and last value (inclusive) of `range`, or `None` when it is empty. Values start at
/// 1, so a range starting at 0 starts at 1.
fn inclusive_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let first = match range.start_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.checked_add(1)?,
        Bound::Unbounded => 1,
    }
    .max(1);
    let last = match range.end_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}

/// Folds the events of one stream whose sequence lies in `range` (`2..4`, `5..`, `..=9`, `..`),
/// in sequence order, reading page by page (the original Erlang project's `fold/4`).
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{StoreError, fold_stream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let events = (0..10).map(|_| NewEvent::new("Ticked", b"{}".to_vec())).collect();
/// store.append(&stream, ExpectedVersion::Any, events).await?;
/// let seqs = fold_stream(&store, &stream, 3..=5, Vec::new(), |mut v, e| {
///     v.push(e.sequence);
///     v
/// })
/// .await?;
/// assert_eq!(seqs, [3, 4, 5]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The store's error, for the first page that fails.
pub async fn fold_stream<S, Acc, F>(
    store: &S,
    stream: &StreamId,
    range: impl RangeBounds<u64>,
    mut acc: Acc,
    mut f: F,
) -> Result<Acc, StoreError>
where
    S: EventStore + ?Sized,
    F: FnMut(Acc, RecordedEvent) -> Acc,
{
    let Some((mut next, last)) = inclusive_bounds(&range) else {
        return Ok(acc);
    };
    loop {
        let wanted = usize::try_from(last - next).map_or(FOLD_PAGE, |n| n.saturating_add(1));
        let limit = wanted.min(FOLD_PAGE);
        let page = store.read_stream(stream, next, limit).await?;
        let done = page.len() < limit;
        for event in page {
            if event.sequence > last {
                return Ok(acc);
            }
            next = event.sequence.saturating_add(1);
            acc = f(acc, event);
        }
        if done || next > last || next == u64::MAX {
            return Ok(acc);
        }
    }
}

/// Folds the events of the global log whose position lies in `range` (`2..4`, `5..`, `..=9`,
/// `..`), in position order, reading page by page (the original Erlang project's `fold_all/3`).
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::{StoreError, fold_all};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("counter", "c-1");
/// let events = (0..10).map(|_| NewEvent::new("Ticked", b"{}".to_vec())).collect();
/// store.append(&stream, ExpectedVersion::Any, events).await?;
/// assert_eq!(fold_all(&store, 5.., 0, |n, _| n + 1).await?, 6);
/// assert_eq!(fold_all(&store, ..3, 0, |n, _| n + 1).await?, 2);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The store's error, for the first page that fails.
pub async fn fold_all<S, Acc, F>(
    store: &S,
    range: impl RangeBounds<u64>,
    mut acc: Acc,
    mut f: F,
) -> Result<Acc, StoreError>
where
    S: EventStore + ?Sized,
    F: FnMut(Acc, RecordedEvent) -> Acc,
{
    let Some((mut next, last)) = inclusive_bounds(&range) else {
        return Ok(acc);
    };
    loop {
        let wanted = usize::try_from(last - next).map_or(FOLD_PAGE, |n| n.saturating_add(1));
        let limit = wanted.min(FOLD_PAGE);
        let page = store.read_all(next, limit).await?;
        if page.is_empty() {
            return Ok(acc);
        }
        for event in page {
            if event.position > last {
                return Ok(acc);
            }
            next = event.position.saturating_add(1);
            acc = f(acc, event);
        }
        if next > last || next == u64::MAX {
            return Ok(acc);
        }
    }
}
