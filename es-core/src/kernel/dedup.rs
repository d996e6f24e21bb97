//! Idempotent commands: a command whose id the aggregate committed within its last
//! `dedup_window` commands is answered with the first answer instead of being run again.
//!
//! The store is the source of truth. An actor keeps a [`Window`] (the ids of its latest
//! commands and the sequences of their events) only once it has seen a command with an explicit
//! id: aggregates whose commands carry no id never build one. The window is built by reading
//! the end of the stream backwards page by page, and kept in step with the store by the
//! stream version it covers: commits of this actor extend it, and anything else (a conflict
//! with another node, a reload) is read from the store before the next lookup. So the answer
//! is the same after passivation, a restart, or on another node sharing the store.
//!
//! A duplicate's answer is read back from the store (its events, with their positions), not
//! kept in memory: the window holds only ids and sequence ranges.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::store::{EventStore, StoreError, StreamId};

use super::Committed;
use super::context::Context;
use super::message::Job;

/// The latest commands of one aggregate, oldest first, with an index by id.
pub(crate) struct Window {
    /// Every command in the window (ids or not), oldest first: the eviction order.
    entries: VecDeque<Entry>,
    /// The entries that have an id, by id (the id's allocation is shared with `entries`).
    by_id: HashMap<Arc<str>, Range, foldhash::fast::RandomState>,
    /// The stream version the window covers: every command up to it is in it (or was evicted).
    version: u64,
    capacity: usize,
}

/// The sequences of one command's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    first: u64,
    last: u64,
}

/// One committed command: its id and the sequences of its events.
struct Entry {
    /// `None` for commands recorded without an id (before the envelope existed), and for this
    /// actor's own commands that had no explicit id (their fresh ids cannot be repeated).
    id: Option<Arc<str>>,
    range: Range,
}

impl Window {
    fn empty(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity.min(4)),
            by_id: HashMap::default(),
            version: 0,
            capacity,
        }
    }

    fn push(&mut self, id: Option<&str>, first: u64, last: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity
            && let Some(old) = self.entries.pop_front()
            && let Some(old_id) = old.id
            && self.by_id.get(&old_id) == Some(&old.range)
        {
            self.by_id.remove(&old_id);
        }
        let range = Range { first, last };
        let id: Option<Arc<str>> = id.map(Arc::from);
        if let Some(id) = &id {
            self.by_id.insert(id.clone(), range);
        }
        self.entries.push_back(Entry { id, range });
    }

    /// Adds commands read from the store: `ids` are consecutive events `(sequence, command id)`
    /// starting right after a command boundary; consecutive events with one id are one command.
    fn absorb(&mut self, ids: &[(u64, Option<Arc<str>>)]) {
        for group in groups(ids) {
            self.push(group.0, group.1, group.2);
        }
    }

    fn find(&self, id: &str) -> Option<Range> {
        self.by_id.get(id).copied()
    }

    /// Records the commands of a batch this actor just committed, which moved the stream from
    /// `base` to `version`; ignored when the window is not at `base` (it catches up from the
    /// store before its next lookup).
    pub(crate) fn record<'a>(
        &mut self,
        base: u64,
        version: u64,
        commands: impl Iterator<Item = (Option<&'a str>, u64, u64)>,
    ) {
        if self.version != base {
            return;
        }
        for (id, first, last) in commands {
            self.push(id, first, last);
        }
        self.version = version;
    }
}

/// Groups consecutive events with the same command id: `(id, first, last)`.
fn groups(ids: &[(u64, Option<Arc<str>>)]) -> Vec<(Option<&str>, u64, u64)> {
    let mut out: Vec<(Option<&str>, u64, u64)> = Vec::new();
    for (sequence, id) in ids {
        match out.last_mut() {
            Some(last) if last.0.is_some() && last.0 == id.as_deref() => last.2 = *sequence,
            _ => out.push((id.as_deref(), *sequence, *sequence)),
        }
    }
    out
}

/// `(sequence, command id)` of the events of `stream` from `from` to `to` (inclusive).
async fn ids_between(
    store: &dyn EventStore,
    stream: &StreamId,
    from: u64,
    to: u64,
    page: usize,
) -> Result<Vec<(u64, Option<Arc<str>>)>, StoreError> {
    let mut out = Vec::new();
    let mut next = from;
    while next <= to {
        let want = usize::try_from(to - next + 1)
            .unwrap_or(usize::MAX)
            .min(page);
        let events = store.read_stream(stream, next, want).await?;
        let Some(last) = events.last().map(|e| e.sequence) else {
            break;
        };
        out.extend(
            events
                .into_iter()
                .filter(|e| e.sequence <= to)
                .map(|e| (e.sequence, e.envelope.command_id)),
        );
        next = last + 1;
    }
    Ok(out)
}

/// The window of `stream` at `version`: built from the end of the stream when there is none,
/// else brought up to `version` with what the store has after it.
async fn synced<'w>(
    ctx: &Context,
    stream: &StreamId,
    version: u64,
    window: &'w mut Option<Box<Window>>,
) -> Result<&'w mut Window, StoreError> {
    let capacity = ctx.config.dedup_window;
    let page = ctx.config.replay_page.max(1);
    let store = &*ctx.event_store;
    let window = match window {
        Some(window) => window,
        None => window.insert(Box::new(
            build(store, stream, version, capacity, page).await?,
        )),
    };
    if window.version < version {
        let ids = ids_between(store, stream, window.version + 1, version, page).await?;
        window.absorb(&ids);
        window.version = version;
    }
    Ok(window)
}

/// The window of the last `capacity` commands of `stream` at `version`: reads backwards, a page
/// at a time, until the oldest command in view is whole (more than `capacity` commands seen)
/// or the stream's start is reached.
async fn build(
    store: &dyn EventStore,
    stream: &StreamId,
    version: u64,
    capacity: usize,
    page: usize,
) -> Result<Window, StoreError> {
    let step = u64::try_from(capacity.max(64)).unwrap_or(u64::MAX);
    let mut ids: Vec<(u64, Option<Arc<str>>)> = Vec::new();
    let mut from = version + 1;
    while from > 1 {
        let start = from.saturating_sub(step).max(1);
        let mut older = ids_between(store, stream, start, from - 1, page).await?;
        older.append(&mut ids);
        ids = older;
        from = start;
        if groups(&ids).len() > capacity {
            break;
        }
    }
    let all = groups(&ids);
    let mut built = Window::empty(capacity);
    for (id, first, last) in all.iter().skip(all.len().saturating_sub(capacity)) {
        built.push(*id, *first, *last);
    }
    built.version = version;
    Ok(built)
}

/// Whether the idempotency step has anything to do for `jobs`: the window is on and a command
/// carries an explicit id. Checked before [`admit`], so that the common batch (no ids) pays
/// for nothing else.
pub(crate) fn wanted<A: Aggregate>(ctx: &Context, jobs: &[Job<A>]) -> bool {
    ctx.config.dedup_window > 0 && jobs.iter().any(|j| j.command_id().is_some())
}

/// The idempotency step, taken once before each decision, on the state at `version`: the one
/// place where repeats are found and answered.
///
/// 1. The jobs from the first one that repeats the explicit id of an earlier job of the batch
///    on are split off and returned: they run after this group committed, so the repeat gets
///    the first copy's answer.
/// 2. Every job left whose id the aggregate already committed (within its window) is answered
///    with the first answer, read back from the store, and removed from `jobs`.
///
/// What stays in `jobs` has distinct ids that were never committed: it is decided next.
///
/// # Errors
///
/// A store error while reading the window or a first answer; `jobs` then holds every job not
/// yet answered (the split-off ones included), for the caller to answer.
pub(crate) async fn admit<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    version: u64,
    window: &mut Option<Box<Window>>,
    jobs: &mut Vec<Job<A>>,
) -> Result<Vec<Job<A>>, StoreError> {
    let later = split_at_repeat(jobs);
    match answer_repeats(ctx, stream, version, window, jobs).await {
        Ok(()) => Ok(later),
        Err(e) => {
            jobs.extend(later);
            Err(e)
        }
    }
}

/// Answers, from the window, every job whose explicit command id the aggregate (at `version`)
/// already committed, and removes them from `jobs`.
async fn answer_repeats<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    version: u64,
    window: &mut Option<Box<Window>>,
    jobs: &mut Vec<Job<A>>,
) -> Result<(), StoreError> {
    let window = synced(ctx, stream, version, window).await?;
    let mut repeats = Vec::new();
    let mut kept = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        match job.command_id().and_then(|id| window.find(id)) {
            Some(range) => repeats.push((job, range.first, range.last)),
            None => kept.push(job),
        }
    }
    *jobs = kept;
    let mut repeats = repeats.into_iter();
    while let Some((job, first, last)) = repeats.next() {
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        let read = match ctx.event_store.read_stream(stream, first, count).await {
            Ok(events)
                if events.len() == count && events.last().map(|e| e.sequence) == Some(last) =>
            {
                Ok(events)
            }
            Ok(_) => Err(StoreError::Corrupt(format!(
                "stream {stream}: events {first}..={last} of a repeated command cannot be read back"
            ))),
            Err(e) => Err(e),
        };
        match read {
            Ok(events) => {
                tracing::debug!(%stream, version = last, "repeated command id answered from the window");
                job.answer(Ok(Committed {
                    version: last,
                    events,
                }));
            }
            Err(e) => {
                // Not answered here: back to the caller, which answers every job left.
                jobs.push(job);
                jobs.extend(repeats.map(|(job, _, _)| job));
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Splits off the jobs from the first one that repeats the explicit command id of an earlier
/// job of the batch. Empty when there is no repeat.
fn split_at_repeat<A: Aggregate>(jobs: &mut Vec<Job<A>>) -> Vec<Job<A>> {
    if jobs
        .iter()
        .filter(|j| j.command_id().is_some())
        .take(2)
        .count()
        < 2
    {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let repeat = jobs
        .iter()
        .position(|j| j.command_id().is_some_and(|id| !seen.insert(id)));
    match repeat {
        Some(at) => jobs.split_off(at),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[(u64, Option<&str>)]) -> Vec<(u64, Option<Arc<str>>)> {
        list.iter().map(|(s, id)| (*s, id.map(Arc::from))).collect()
    }

    #[test]
    fn consecutive_events_of_one_id_are_one_command_and_none_ids_never_merge() {
        let events = ids(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, None),
            (4, None),
            (5, Some("b")),
            (6, Some("a")),
        ]);
        assert_eq!(
            groups(&events),
            [
                (Some("a"), 1, 2),
                (None, 3, 3),
                (None, 4, 4),
                (Some("b"), 5, 5),
                (Some("a"), 6, 6)
            ]
        );
    }

    #[test]
    fn an_evicted_id_leaves_the_index_but_a_newer_copy_stays() {
        let mut window = Window::empty(2);
        window.push(Some("a"), 1, 1);
        window.push(Some("b"), 2, 2);
        window.push(Some("a"), 3, 3);
        assert_eq!(window.find("a"), Some(Range { first: 3, last: 3 }));
        window.push(None, 4, 4);
        assert_eq!(
            window.find("a"),
            Some(Range { first: 3, last: 3 }),
            "the newer a stays"
        );
        assert!(window.find("b").is_none());
        window.push(None, 5, 5);
        assert!(window.find("a").is_none());
        assert!(window.by_id.is_empty() && window.entries.len() == 2);
    }

    #[test]
    fn the_window_keeps_the_latest_commands_and_finds_the_newest_copy() {
        let mut window = Window::empty(2);
        window.absorb(&ids(&[(1, Some("a")), (2, Some("b")), (3, Some("c"))]));
        assert!(window.find("a").is_none(), "evicted");
        assert_eq!(window.find("c"), Some(Range { first: 3, last: 3 }));
        window.version = 3;
        window.record(2, 9, [(Some("z"), 3, 9)].into_iter());
        assert!(
            window.find("z").is_none(),
            "a window behind the base ignores the record"
        );
        window.record(3, 4, [(Some("d"), 4, 4)].into_iter());
        assert_eq!(window.version, 4);
        assert!(window.find("b").is_none() && window.find("d").is_some());
    }
}
