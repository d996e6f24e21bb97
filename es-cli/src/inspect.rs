//! The read-only commands: `streams`, `events`, `log`, `tail`, `stats`, `projections` (and
//! `projections reset`, the one that writes).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use es_core::store::{EventStore, RecordedEvent, Store, StoreError, StreamId};
use es_stores::OpenedStore;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, StoreContext};
use crate::format;
use crate::output::{payload_cell, table};

/// Events read per page by the commands that scan the log.
pub(crate) const PAGE: usize = 4096;

/// Calls `f` with each page of the global log from `from`, in position order, until the log
/// ends or `f` returns `false`.
pub(crate) async fn scan_log<F>(store: &dyn EventStore, from: u64, mut f: F) -> CliResult<()>
where
    F: FnMut(Vec<RecordedEvent>) -> CliResult<bool>,
{
    let mut next = from.max(1);
    loop {
        let page = store.read_all(next, PAGE).await.doing("reading the log")?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        next = last.position + 1;
        if !f(page)? {
            return Ok(());
        }
    }
}

/// Every stream and its version (its last sequence), from one scan of the log.
pub(crate) async fn stream_versions(store: &dyn Store) -> CliResult<BTreeMap<StreamId, u64>> {
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    scan_log(store, 1, |page| {
        for e in page {
            match versions.get_mut(&e.stream) {
                Some(v) => *v = (*v).max(e.sequence),
                None => {
                    versions.insert(e.stream, e.sequence);
                }
            }
        }
        Ok(true)
    })
    .await?;
    Ok(versions.into_iter().collect())
}

#[derive(Serialize)]
struct StreamRow<'a> {
    #[serde(rename = "type")]
    aggregate_type: &'a str,
    id: &'a str,
    version: u64,
}

/// `es streams`.
pub(crate) async fn streams(store: &OpenedStore, ctx: &mut Ctx) -> CliResult<u8> {
    let versions = stream_versions(&*store.store()).await?;
    if ctx.json {
        for (stream, version) in &versions {
            ctx.out.json(&StreamRow {
                aggregate_type: &stream.aggregate_type,
                id: &stream.aggregate_id,
                version: *version,
            })?;
        }
    } else {
        let mut t = table(&["type", "id", "version"]);
        for (stream, version) in &versions {
            t.add_row(vec![
                stream.aggregate_type.clone(),
                stream.aggregate_id.clone(),
                version.to_string(),
            ]);
        }
        ctx.out.line(t)?;
        ctx.out.line(format!("{} streams", versions.len()))?;
    }
    Ok(EXIT_OK)
}

/// Prints events: JSON lines in the export format, or a table.
struct EventPrinter {
    rows: Vec<RecordedEvent>,
    shown: u64,
}

impl EventPrinter {
    fn new() -> Self {
        Self {
            rows: Vec::new(),
            shown: 0,
        }
    }

    fn event(&mut self, ctx: &mut Ctx, e: RecordedEvent) -> CliResult<()> {
        self.shown += 1;
        if ctx.json {
            let mut line = Vec::with_capacity(256);
            format::write_line(&mut line, &e)
                .map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
            ctx.out.bytes(&line)
        } else {
            self.rows.push(e);
            Ok(())
        }
    }

    fn finish(self, ctx: &mut Ctx) -> CliResult<()> {
        if ctx.json {
            return Ok(());
        }
        let mut t = table(&[
            "position",
            "stream",
            "seq",
            "type",
            "v",
            "timestamp",
            "payload",
        ]);
        for e in &self.rows {
            t.add_row(vec![
                e.position.to_string(),
                e.stream.to_string(),
                e.sequence.to_string(),
                e.event_type.clone(),
                e.event_version.to_string(),
                format::format_timestamp(&e.timestamp),
                payload_cell(&e.payload, 60),
            ]);
        }
        ctx.out.line(t)?;
        ctx.out.line(format!("{} events", self.shown))
    }
}

/// `es events TYPE ID`.
pub(crate) async fn events(
    store: &OpenedStore,
    ctx: &mut Ctx,
    aggregate_type: &str,
    id: &str,
) -> CliResult<u8> {
    let stream = StreamId::new(aggregate_type, id);
    stream
        .validate()
        .map_err(|e| CliError::new(format!("bad stream: {e}")))?;
    let store = crate::forget::readable(store);
    let mut printer = EventPrinter::new();
    let mut next = 1;
    loop {
        let page = store
            .read_stream(&stream, next, PAGE)
            .await
            .doing(&format!("reading stream {stream}"))?;
        let done = page.len() < PAGE;
        for e in page {
            next = e.sequence + 1;
            printer.event(ctx, e)?;
        }
        if done {
            break;
        }
    }
    if printer.shown == 0 && !ctx.json {
        return Err(CliError::new(format!(
            "stream {stream} has no events; `es streams` lists the streams"
        )));
    }
    printer.finish(ctx)?;
    Ok(EXIT_OK)
}

/// What `es log` shows.
pub(crate) struct LogFilter {
    pub(crate) from: u64,
    pub(crate) limit: u64,
    pub(crate) event_type: Option<String>,
    pub(crate) aggregate: Option<String>,
}

impl LogFilter {
    /// Whether `e` passes the type and aggregate type filters.
    pub(crate) fn matches(&self, e: &RecordedEvent) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self
                .aggregate
                .as_ref()
                .is_none_or(|a| *a == e.stream.aggregate_type)
    }
}

/// `es log`.
pub(crate) async fn log(store: &OpenedStore, ctx: &mut Ctx, filter: &LogFilter) -> CliResult<u8> {
    let mut printer = EventPrinter::new();
    let limit = if filter.limit == 0 {
        u64::MAX
    } else {
        filter.limit
    };
    scan_log(&*crate::forget::readable(store), filter.from, |page| {
        for e in page {
            if !filter.matches(&e) {
                continue;
            }
            printer.event(ctx, e)?;
            if printer.shown >= limit {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    printer.finish(ctx)?;
    Ok(EXIT_OK)
}

/// `es tail [-n N] [--follow]`.
pub(crate) async fn tail(
    store: &OpenedStore,
    ctx: &mut Ctx,
    lines: usize,
    follow: bool,
) -> CliResult<u8> {
    let es = store.store();
    let mut follower = LogFollower::new(es.clone());
    let head = es.head_position().await.doing("reading the head")?;
    // The embedded stores' positions are gapless, so the last N start at head - N + 1;
    // elsewhere the log is scanned for them.
    let gapless = store.url().backend() != "postgres";
    let from = if gapless {
        head.saturating_sub(lines as u64) + 1
    } else {
        1
    };
    let mut last: VecDeque<RecordedEvent> = VecDeque::with_capacity(lines + 1);
    let mut next = from;
    scan_log(&*es, from, |page| {
        for e in page {
            next = e.position + 1;
            last.push_back(e);
            if last.len() > lines {
                last.pop_front();
            }
        }
        Ok(true)
    })
    .await?;
    let json = ctx.json;
    let print = |ctx: &mut Ctx, e: &RecordedEvent| -> CliResult<()> {
        if json {
            let mut line = Vec::with_capacity(256);
            format::write_line(&mut line, e)
                .map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
            ctx.out.bytes(&line)
        } else {
            ctx.out.line(format!(
                "{:>8}  {}  {}#{}  {} v{}  {}",
                e.position,
                format::format_timestamp(&e.timestamp),
                e.stream,
                e.sequence,
                e.event_type,
                e.event_version,
                payload_cell(&e.payload, 120)
            ))
        }
    };
    for e in &last {
        print(ctx, e)?;
    }
    if !follow {
        return Ok(EXIT_OK);
    }
    ctx.out.flush()?;
    follower.next = next;
    loop {
        let page = tokio::select! {
            page = follower.next_page() => page?,
            _ = tokio::signal::ctrl_c() => return Ok(EXIT_OK),
        };
        for e in &page {
            print(ctx, e)?;
        }
        ctx.out.flush()?;
    }
}

/// How often a follower looks at the log when the store's `subscribe()` does not wake it (a
/// store closed under it, or a wake-up missed).
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Follows the global log as it grows: `es tail --follow` and the web console's live log.
/// Woken by the store's `subscribe()` (PostgreSQL's also wakes on other nodes' commits), with
/// a poll every second as the fallback.
pub(crate) struct LogFollower {
    store: Arc<dyn Store>,
    head: tokio::sync::watch::Receiver<u64>,
    /// Whether `subscribe()`'s sender is gone (then only the poll is left).
    closed: bool,
    /// The next position to read.
    pub(crate) next: u64,
}

impl LogFollower {
    /// A follower of `store`'s log from position 1 (set [`LogFollower::next`] to start
    /// elsewhere).
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        let head = store.subscribe();
        Self {
            store,
            head,
            closed: false,
            next: 1,
        }
    }

    /// The next page of events from [`LogFollower::next`] on, waiting until there is one.
    pub(crate) async fn next_page(&mut self) -> CliResult<Vec<RecordedEvent>> {
        loop {
            let page = self
                .store
                .read_all(self.next, PAGE)
                .await
                .doing("reading the log")?;
            if let Some(last) = page.last() {
                self.next = last.position + 1;
                return Ok(page);
            }
            if self.closed {
                tokio::time::sleep(FOLLOW_POLL).await;
                continue;
            }
            tokio::select! {
                changed = self.head.changed() => self.closed = changed.is_err(),
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    }
}

#[derive(Serialize, Default)]
struct Stats {
    events: u64,
    streams: u64,
    head_position: u64,
    first_timestamp: Option<String>,
    last_timestamp: Option<String>,
    events_by_type: BTreeMap<String, u64>,
    streams_by_aggregate_type: BTreeMap<String, u64>,
    snapshots: u64,
    checkpoints: u64,
}

/// `es stats`.
pub(crate) async fn stats(store: &OpenedStore, ctx: &mut Ctx) -> CliResult<u8> {
    let es = store.store();
    let mut stats = Stats::default();
    let mut streams: HashMap<StreamId, u64> = HashMap::new();
    let mut last = None;
    scan_log(&*es, 1, |page| {
        for e in page {
            stats.events += 1;
            if stats.first_timestamp.is_none() {
                stats.first_timestamp = Some(format::format_timestamp(&e.timestamp));
            }
            *stats
                .events_by_type
                .entry(e.event_type.clone())
                .or_default() += 1;
            if !streams.contains_key(&e.stream) {
                *stats
                    .streams_by_aggregate_type
                    .entry(e.stream.aggregate_type.clone())
                    .or_default() += 1;
                streams.insert(e.stream.clone(), e.sequence);
            }
            last = Some(e);
        }
        Ok(true)
    })
    .await?;
    stats.streams = streams.len() as u64;
    stats.head_position = es.head_position().await.doing("reading the head")?;
    stats.last_timestamp = last.map(|e| format::format_timestamp(&e.timestamp));
    for stream in streams.keys() {
        if es
            .load_latest(stream)
            .await
            .doing(&format!("loading the snapshot of {stream}"))?
            .is_some()
        {
            stats.snapshots += 1;
        }
    }
    stats.checkpoints = store
        .checkpoint_names()
        .await
        .doing("listing checkpoints")?
        .len() as u64;
    if ctx.json {
        ctx.out.json(&stats)?;
        return Ok(EXIT_OK);
    }
    let mut t = table(&[]);
    t.add_row(vec!["store".to_owned(), store.url().to_string()]);
    t.add_row(vec!["events".to_owned(), stats.events.to_string()]);
    t.add_row(vec!["streams".to_owned(), stats.streams.to_string()]);
    t.add_row(vec![
        "head position".to_owned(),
        stats.head_position.to_string(),
    ]);
    t.add_row(vec![
        "first event".to_owned(),
        stats.first_timestamp.clone().unwrap_or_default(),
    ]);
    t.add_row(vec![
        "last event".to_owned(),
        stats.last_timestamp.clone().unwrap_or_default(),
    ]);
    t.add_row(vec![
        "streams with a snapshot".to_owned(),
        stats.snapshots.to_string(),
    ]);
    t.add_row(vec![
        "checkpoints".to_owned(),
        stats.checkpoints.to_string(),
    ]);
    ctx.out.line(t)?;
    let mut types = table(&["event type", "events"]);
    for (name, n) in &stats.events_by_type {
        types.add_row(vec![name.clone(), n.to_string()]);
    }
    ctx.out.line(types)?;
    let mut aggregates = table(&["aggregate type", "streams"]);
    for (name, n) in &stats.streams_by_aggregate_type {
        aggregates.add_row(vec![name.clone(), n.to_string()]);
    }
    ctx.out.line(aggregates)?;
    Ok(EXIT_OK)
}

/// How many events come after `position` (counted without decoding them).
pub(crate) async fn events_after(store: &dyn Store, position: u64) -> Result<u64, StoreError> {
    fn none(_: &str) -> bool {
        false
    }
    let mut count = 0u64;
    let mut next = position + 1;
    loop {
        let page = store.read_all_filtered(next, PAGE * 4, none).await?;
        if page.scanned == 0 {
            return Ok(count);
        }
        count += page.scanned as u64;
        next = page.scanned_to + 1;
    }
}
