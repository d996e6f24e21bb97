//! What the console reads from a store: pages of streams, the log newest first, the events of
//! one correlation id, and events as JSON.

use std::collections::{BTreeMap, VecDeque};

use es_core::store::{RecordedEvent, Store, StreamId};
use es_stores::OpenedStore;
use serde_json::value::RawValue;

use crate::error::{CliError, CliResult, StoreContext};
use crate::format;
use crate::inspect::{LogFilter, scan_log};

/// Stream heads read per page.
const HEADS_PAGE: usize = 1024;

/// The most stream heads one request of the stream list reads: a search that matches rarely
/// answers with a cursor after this many, and the next page goes on from there.
const MAX_HEADS_SCANNED: usize = 100_000;

/// An event as JSON: its export line ([`format::write_line`]), the whole envelope.
pub(super) fn event_json(event: &RecordedEvent) -> CliResult<Box<RawValue>> {
    let mut line = Vec::with_capacity(256);
    format::write_line(&mut line, event)
        .map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
    let text =
        String::from_utf8(line).map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
    RawValue::from_string(text.trim_end().to_owned())
        .map_err(|e| CliError::new(format!("encoding an event: {e}")))
}

/// Events as JSON values.
pub(super) fn events_json(events: &[RecordedEvent]) -> CliResult<Vec<Box<RawValue>>> {
    events.iter().map(event_json).collect()
}

/// Calls `f` with every stream head after `after`, in the store's order, until `f` returns
/// `false` or the heads end.
async fn for_each_head(
    store: &OpenedStore,
    after: Option<StreamId>,
    mut f: impl FnMut(StreamId, u64) -> bool,
) -> CliResult<()> {
    let mut after = after;
    loop {
        let page = store
            .stream_heads(after.as_ref(), HEADS_PAGE)
            .await
            .doing("reading the streams")?;
        let full = page.len() == HEADS_PAGE;
        for (stream, version) in page {
            after = Some(stream.clone());
            if !f(stream, version) {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// How many streams each aggregate type has (reads every stream head).
pub(super) async fn stream_types(store: &OpenedStore) -> CliResult<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for_each_head(store, None, |stream, _| {
        *counts.entry(stream.aggregate_type).or_insert(0) += 1;
        true
    })
    .await?;
    Ok(counts)
}

/// Which streams to list.
pub(super) struct StreamQuery {
    /// Only streams of this aggregate type.
    pub(super) aggregate_type: Option<String>,
    /// Only streams whose `type/id` contains this, ignoring case.
    pub(super) search: Option<String>,
    /// Start after this stream (the cursor of the previous page).
    pub(super) after: Option<StreamId>,
    /// At most this many.
    pub(super) limit: usize,
}

/// A page of streams with their versions, and the cursor of the next page (`None` at the end).
pub(super) async fn streams(
    store: &OpenedStore,
    query: &StreamQuery,
) -> CliResult<(Vec<(StreamId, u64)>, Option<StreamId>)> {
    let search = query.search.as_ref().map(|q| q.to_lowercase());
    let limit = query.limit.max(1);
    let mut found = Vec::new();
    let mut scanned = 0usize;
    let mut cut_at = None;
    for_each_head(store, query.after.clone(), |stream, version| {
        scanned += 1;
        let matches = query
            .aggregate_type
            .as_ref()
            .is_none_or(|t| *t == stream.aggregate_type)
            && search
                .as_ref()
                .is_none_or(|q| stream.to_string().to_lowercase().contains(q));
        if matches {
            found.push((stream.clone(), version));
        }
        if found.len() == limit || scanned >= MAX_HEADS_SCANNED {
            cut_at = Some(stream);
            return false;
        }
        true
    })
    .await?;
    Ok((found, cut_at))
}

/// Up to `limit` events before position `before` (exclusive) that pass `filter`, newest
/// first, and the position to ask for the next (older) page from (`None` at the start of the
/// log). Reads windows of positions backwards, each twice as wide as the last, so positions
/// far apart (PostgreSQL's) are crossed in a few reads; only the newest matches of a window
/// are kept.
pub(super) async fn newest_first(
    store: &dyn Store,
    before: u64,
    limit: usize,
    filter: &LogFilter,
) -> CliResult<(Vec<RecordedEvent>, Option<u64>)> {
    let limit = limit.max(1);
    let mut found: Vec<RecordedEvent> = Vec::with_capacity(limit);
    let mut end = before;
    let mut window = (limit as u64 * 2).max(64);
    while end > 1 && found.len() < limit {
        let start = end.saturating_sub(window).max(1);
        let wanted = limit - found.len();
        let mut newest: VecDeque<RecordedEvent> = VecDeque::with_capacity(wanted + 1);
        scan_log(store, start, |page| {
            for e in page {
                if e.position >= end {
                    return Ok(false);
                }
                if filter.matches(&e) {
                    newest.push_back(e);
                    if newest.len() > wanted {
                        newest.pop_front();
                    }
                }
            }
            Ok(true)
        })
        .await?;
        found.extend(newest.into_iter().rev());
        end = start;
        window = window.saturating_mul(2);
    }
    let next = (found.len() == limit)
        .then(|| found.last().map(|e| e.position))
        .flatten()
        .filter(|p| *p > 1);
    Ok((found, next))
}

/// Up to `limit` events whose correlation id is `id`, in log order, and whether there were
/// more. Reads the whole log.
pub(super) async fn correlated(
    store: &dyn Store,
    id: &str,
    limit: usize,
) -> CliResult<(Vec<RecordedEvent>, bool)> {
    let mut found = Vec::new();
    let mut truncated = false;
    scan_log(store, 1, |page| {
        for e in page {
            if e.correlation_id() == Some(id) {
                if found.len() == limit {
                    truncated = true;
                    return Ok(false);
                }
                found.push(e);
            }
        }
        Ok(true)
    })
    .await?;
    Ok((found, truncated))
}
