//! `export`, `import` and `copy`: moving events between stores and files, page by page.
//!
//! Writes go through a [`Pipeline`]: runs of consecutive events of one stream become one
//! append, appends are gathered into batches of about [`BATCH_EVENTS`] events
//! ([`BATCH_EVENTS_POSTGRES`] into PostgreSQL) written with
//! one [`EventStore::append_many`] (one commit on the file, LMDB and PostgreSQL stores), and
//! up to [`BATCHES_IN_FLIGHT`] batches are in flight at once, each queued at the store before
//! the next is made, so the target commits them in the source's order. Every append expects
//! the stream at the version the source had before the event, so a rerun can never write an
//! event twice, and every answer is checked to have landed after the previous one in the
//! target's log.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::future::Future;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use es_core::store::{
    BatchAppend, BatchOutcome, CheckpointStore, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, SnapshotStore, Store, StoreError, StreamId,
};
use es_stores::OpenedStore;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use crate::error::{CliError, CliResult, IoContext, StoreContext};
use crate::format::{self, ImportedEvent};
use crate::output::progress;
use crate::{Ctx, EXIT_OK, open_store};

/// About how many events one batch (one `append_many`) holds: a batch is sent once it holds
/// this many.
const BATCH_EVENTS: usize = 8 * 1024;
/// The same into PostgreSQL, where each batch is a transaction and its commit a round trip and
/// a flush of its own: twice as many events per batch copy 1M events in 9.0-9.5 s instead of
/// 10.3-10.9 s (the server takes at most 65,535 events in one transaction). The other stores
/// keep [`BATCH_EVENTS`], which holds the peak memory of a copy lower.
const BATCH_EVENTS_POSTGRES: usize = 16 * 1024;
/// The most batches in flight at once (bounds memory together with the page size).
const BATCHES_IN_FLIGHT: usize = 2;

type Batch = Pin<Box<dyn Future<Output = Result<BatchOutcome, StoreError>> + Send>>;

/// The streams of a batch's appends, in order, for messages: their ids in one string (one
/// allocation per batch rather than two per append).
#[derive(Default)]
struct StreamNames {
    text: String,
    /// Per append: where its aggregate type and its aggregate id end in `text`.
    ends: Vec<(usize, usize)>,
}

impl StreamNames {
    fn push(&mut self, stream: &StreamId) {
        self.text.push_str(&stream.aggregate_type);
        let type_end = self.text.len();
        self.text.push_str(&stream.aggregate_id);
        self.ends.push((type_end, self.text.len()));
    }

    /// The stream of append `i`, as `StreamId` displays it (`type/id`).
    fn get(&self, i: usize) -> String {
        let start = match i.checked_sub(1).and_then(|p| self.ends.get(p)) {
            Some(&(_, end)) => end,
            None => 0,
        };
        match self.ends.get(i) {
            Some(&(type_end, end)) => StreamId::new(
                self.text.get(start..type_end).unwrap_or_default(),
                self.text.get(type_end..end).unwrap_or_default(),
            )
            .to_string(),
            None => "?".to_owned(),
        }
    }
}

/// Consecutive events of one stream, gathered into one append.
struct Run {
    stream: StreamId,
    first_sequence: u64,
    events: Vec<NewEvent>,
}

/// Appends runs of events to a target store in batches, a few in flight, in order.
pub(crate) struct Pipeline {
    target: Arc<dyn Store>,
    /// The run being gathered (not in `batch` yet).
    run: Option<Run>,
    /// The batch being gathered, its event count and its streams.
    batch: Vec<BatchAppend>,
    batch_events: usize,
    /// The events that fill a batch ([`BATCH_EVENTS`] or [`BATCH_EVENTS_POSTGRES`]).
    batch_size: usize,
    names: StreamNames,
    in_flight: FuturesOrdered<Batch>,
    /// Per batch in flight, in order: the stream of each of its appends (for messages).
    pending: VecDeque<StreamNames>,
    /// The target position of the last event committed so far.
    last_position: u64,
    /// Events committed.
    pub(crate) written: u64,
    bar: ProgressBar,
}

impl Pipeline {
    pub(crate) fn new(target: &OpenedStore, bar: ProgressBar) -> Self {
        Self {
            target: target.store(),
            batch_size: match target.url().backend() {
                "postgres" => BATCH_EVENTS_POSTGRES,
                _ => BATCH_EVENTS,
            },
            run: None,
            batch: Vec::new(),
            batch_events: 0,
            names: StreamNames::default(),
            in_flight: FuturesOrdered::new(),
            pending: VecDeque::new(),
            last_position: 0,
            written: 0,
            bar,
        }
    }

    /// Adds the event `stream#sequence`: to the run being gathered when it is the next event
    /// of the run's stream, else to a new run (the gathered one goes to the batch, which is
    /// sent when it is full).
    pub(crate) async fn push(
        &mut self,
        stream: StreamId,
        sequence: u64,
        event: NewEvent,
    ) -> CliResult<()> {
        if let Some(run) = &mut self.run
            && run.stream == stream
            && run.first_sequence + run.events.len() as u64 == sequence
        {
            run.events.push(event);
            return Ok(());
        }
        let previous = self.run.replace(Run {
            stream,
            first_sequence: sequence,
            events: vec![event],
        });
        if let Some(run) = previous {
            self.add(run).await?;
        }
        Ok(())
    }

    /// Adds an append of `run` to the batch, sending the batch when it is full.
    async fn add(&mut self, run: Run) -> CliResult<()> {
        self.batch_events += run.events.len();
        let expected = ExpectedVersion::Exact(run.first_sequence.saturating_sub(1));
        self.names.push(&run.stream);
        self.batch
            .push(BatchAppend::new(run.stream, expected, run.events));
        if self.batch_events >= self.batch_size {
            self.send().await?;
        }
        Ok(())
    }

    /// Sends the gathered batch (after waiting for room).
    async fn send(&mut self) -> CliResult<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        while self.pending.len() >= BATCHES_IN_FLIGHT {
            self.complete_one().await?;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_events = 0;
        let names = std::mem::take(&mut self.names);
        let target = Arc::clone(&self.target);
        // Unconstrained: tokio's cooperative budget must not make the first poll return
        // before the batch is queued.
        let mut write: Batch = Box::pin(tokio::task::unconstrained(async move {
            target.append_many(batch).await
        }));
        // Poll it once now: that queues it at the store (the embedded stores' writer queue,
        // PostgreSQL's fair lock of its batch lane) before the next batch is made, so the
        // store commits the batches in this order.
        if let Poll::Ready(result) = futures::poll!(&mut write) {
            write = Box::pin(std::future::ready(result));
        }
        self.in_flight.push_back(write);
        self.pending.push_back(names);
        Ok(())
    }

    /// Waits for the oldest batch in flight and checks its answers.
    async fn complete_one(&mut self) -> CliResult<()> {
        let Some(result) = self.in_flight.next().await else {
            return Ok(());
        };
        let Some(streams) = self.pending.pop_front() else {
            return Ok(());
        };
        let outcomes = result.map_err(|e| CliError::store("writing to the target", &e))?;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let done = outcome.map_err(|e| match e {
                StoreError::Conflict { expected, actual } => CliError::new(format!(
                    "stream {} in the target is at version {actual} where {expected} was \
                     expected: the target holds other events for this stream; copy or import \
                     into an empty store",
                    streams.get(i)
                )),
                other => CliError::store(
                    &format!("writing to stream {} of the target", streams.get(i)),
                    &other,
                ),
            })?;
            for e in &done.events {
                if e.position <= self.last_position {
                    return Err(CliError::new(format!(
                        "the target committed {}#{} at position {} after position {}: the order \
                         of the log was not kept; remove the target and copy again",
                        e.stream, e.sequence, e.position, self.last_position
                    )));
                }
                self.last_position = e.position;
            }
            self.written += done.events.len() as u64;
            self.bar.inc(done.events.len() as u64);
        }
        Ok(())
    }

    /// Sends what is gathered and waits for every batch in flight.
    pub(crate) async fn finish(&mut self) -> CliResult<()> {
        if let Some(run) = self.run.take() {
            self.add(run).await?;
        }
        self.send().await?;
        while !self.pending.is_empty() {
            self.complete_one().await?;
        }
        Ok(())
    }
}

/// Reads the log from `from` in pages on a task of its own, one page ahead of the consumer.
pub(crate) fn read_ahead(
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
async fn known_count(store: &OpenedStore) -> CliResult<Option<u64>> {
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

/// `es export [--out FILE]`.
pub(crate) async fn export(
    store: &OpenedStore,
    ctx: &mut Ctx,
    out: Option<&Path>,
) -> CliResult<u8> {
    let started = Instant::now();
    let mut file = match out {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(path).io(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    // Progress would mix with the data on a terminal's stdout: only when writing a file.
    let bar = progress(
        ctx.progress && out.is_some(),
        known_count(store).await?,
        "export",
    );
    let mut pages = read_ahead(store.store(), 1, 4096);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut count = 0u64;
    while let Some(page) = pages.recv().await {
        let page = page.doing("reading the log")?;
        buf.clear();
        for e in &page {
            format::write_line(&mut buf, e)
                .map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
        }
        count += page.len() as u64;
        bar.inc(page.len() as u64);
        match (&mut file, out) {
            (Some(f), Some(path)) => f
                .write_all(&buf)
                .io(|| format!("writing {}", path.display()))?,
            _ => ctx.out.bytes(&buf)?,
        }
    }
    if let (Some(f), Some(path)) = (file, out) {
        let f = f
            .into_inner()
            .map_err(|e| CliError::new(format!("writing {}: {}", path.display(), e.error())))?;
        f.sync_all()
            .io(|| format!("flushing {} to disk", path.display()))?;
    }
    bar.finish_and_clear();
    if let Some(path) = out {
        report(
            ctx,
            &format!("exported {count} events to {}", path.display()),
            count,
            started,
        )?;
    }
    Ok(EXIT_OK)
}

/// Prints a one-line summary (to stdout, as JSON with --json).
fn report(ctx: &mut Ctx, message: &str, events: u64, started: Instant) -> CliResult<()> {
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    };
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "message": message,
            "events": events,
            "seconds": secs,
            "events_per_second": rate.round(),
        }))
    } else {
        ctx.out
            .line(format!("{message} in {secs:.2} s ({:.0} events/s)", rate))
    }
}

/// The input of an import, as a file that can be read twice (stdin is spooled to a temporary
/// file first).
fn import_input(file: Option<&Path>) -> CliResult<(File, String)> {
    match file {
        Some(path) => Ok((
            File::open(path).io(|| format!("opening {}", path.display()))?,
            path.display().to_string(),
        )),
        None => {
            let mut spool = tempfile::tempfile().io(|| "creating a temporary file".to_owned())?;
            std::io::copy(&mut std::io::stdin().lock(), &mut spool)
                .io(|| "reading stdin".to_owned())?;
            spool
                .rewind()
                .io(|| "rewinding the temporary file".to_owned())?;
            Ok((spool, "stdin".to_owned()))
        }
    }
}

/// Calls `f` with each non-blank line of `file` and its number.
fn for_each_line(
    file: &File,
    name: &str,
    mut f: impl FnMut(u64, &str) -> CliResult<bool>,
) -> CliResult<()> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| CliError::new(format!("{name}, line {}: {e}", number + 1)))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        if !f(number, text)? {
            return Ok(());
        }
    }
}

/// How many bad lines an import lists before it stops looking.
const MAX_REPORTED: usize = 20;

/// `es import [FILE]`.
pub(crate) async fn import(
    store: &OpenedStore,
    ctx: &mut Ctx,
    file: Option<&Path>,
) -> CliResult<u8> {
    let started = Instant::now();
    let target = store.store();
    let head = target
        .head_position()
        .await
        .doing("reading the target's head")?;
    if head > 0 {
        return Err(CliError::new(format!(
            "the store {} already holds events (head position {head}): import only into an \
             empty store; nothing was written",
            store.url()
        )));
    }
    let (mut input, name) = import_input(file)?;

    // Pass 1: every line is checked before anything is written.
    let mut errors: Vec<String> = Vec::new();
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut last_position = 0u64;
    let mut count = 0u64;
    for_each_line(&input, &name, |number, text| {
        match format::parse_line(text) {
            Ok(e) => {
                count += 1;
                let version = versions.entry(e.stream.clone()).or_insert(0);
                if e.sequence != *version + 1 {
                    errors.push(format!(
                        "line {number}: stream {} has sequence {} after {}: an export holds every \
                         event of a stream, in order",
                        e.stream, e.sequence, *version
                    ));
                } else {
                    *version = e.sequence;
                }
                if let Some(position) = e.position {
                    if position <= last_position {
                        errors.push(format!(
                            "line {number}: position {position} after {last_position}: the lines \
                             are not in the log's order"
                        ));
                    }
                    last_position = position;
                }
            }
            Err(message) => errors.push(format!("line {number}: {message}")),
        }
        Ok(errors.len() < MAX_REPORTED)
    })?;
    if !errors.is_empty() {
        let more = if errors.len() >= MAX_REPORTED {
            " (the first ones; there may be more)"
        } else {
            ""
        };
        return Err(CliError::new(format!(
            "{name} is not a valid export{more}:\n  {}\nnothing was written; fix the lines \
             (each must be a JSON object as `es export` writes) and run the import again",
            errors.join("\n  ")
        )));
    }
    drop(versions);

    // Pass 2: write.
    input.rewind().io(|| format!("rewinding {name}"))?;
    let bar = progress(ctx.progress, Some(count), "import");
    let mut pipeline = Pipeline::new(store, bar.clone());
    let mut batch: Vec<ImportedEvent> = Vec::with_capacity(4096);
    let mut failed: Option<CliError> = None;
    // The lines (all valid) are parsed again on a blocking task and written a page at a time.
    let (tx, mut rx) = mpsc::channel::<Vec<ImportedEvent>>(2);
    let reader_name = name.clone();
    let reader = tokio::task::spawn_blocking(move || -> CliResult<()> {
        for_each_line(&input, &reader_name, |number, text| {
            let e = format::parse_line(text)
                .map_err(|m| CliError::new(format!("{reader_name}, line {number}: {m}")))?;
            batch.push(e);
            if batch.len() >= 4096 {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(4096));
                if tx.blocking_send(full).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    });
    'pages: while let Some(page) = rx.recv().await {
        for e in page {
            if let Err(e) = pipeline.push(e.stream, e.sequence, e.event).await {
                failed = Some(e);
                break 'pages;
            }
        }
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| CliError::new(format!("the reading task failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    pipeline.finish().await?;
    bar.finish_and_clear();
    if pipeline.written != count {
        return Err(CliError::new(format!(
            "{} of {count} events were written",
            pipeline.written
        )));
    }
    report(
        ctx,
        &format!("imported {count} events from {name} into {}", store.url()),
        count,
        started,
    )?;
    Ok(EXIT_OK)
}

/// What `copy` copies besides the events.
pub(crate) struct CopyOptions {
    pub(crate) snapshots: bool,
    pub(crate) checkpoints: bool,
    pub(crate) page_size: usize,
}

/// Where a copy resumes: after the source position of the target's last event.
async fn resume_point(source: &dyn Store, target: &dyn Store) -> CliResult<(u64, u64)> {
    let head = target
        .head_position()
        .await
        .doing("reading the target's head")?;
    if head == 0 {
        return Ok((0, 0));
    }
    let last = target
        .read_all(head, 1)
        .await
        .doing("reading the target's last event")?;
    let Some(t) = last.into_iter().next() else {
        return Ok((0, 0));
    };
    let found = source
        .read_stream(&t.stream, t.sequence, 1)
        .await
        .doing("reading the source")?;
    match found.into_iter().next() {
        Some(s)
            if s.sequence == t.sequence
                && s.event_type == t.event_type
                && s.timestamp == t.timestamp
                && s.payload == t.payload =>
        {
            Ok((s.position, t.position))
        }
        _ => Err(CliError::new(format!(
            "the target is not empty and its last event ({}#{}) is not the same event in the \
             source: it is not an earlier copy of this store; copy into an empty store",
            t.stream, t.sequence
        ))),
    }
}

/// Streams read per page of stream heads in the final check.
const HEADS_PAGE: usize = 8192;

/// What the final check of a copy found.
struct CheckReport {
    events: u64,
    streams: u64,
    snapshots: u64,
    checkpoints: u64,
}

/// An order-independent summary of a store's stream heads: the stream and event counts and
/// two sums of a hash of each (stream, version), so two stores whose streams are listed in
/// different orders compare in bounded memory.
#[derive(Debug, Default, PartialEq, Eq)]
struct HeadsDigest {
    streams: u64,
    events: u64,
    sum: u64,
    mix: u64,
}

impl HeadsDigest {
    fn add(&mut self, stream: &StreamId, version: u64) {
        // A fixed-key hash: both sides are summed in this process with the same keys.
        let state = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
        let a = state.hash_one((&stream.aggregate_type, &stream.aggregate_id, version));
        let b = state.hash_one((version, a, &stream.aggregate_id));
        self.streams += 1;
        self.events += version;
        self.sum = self.sum.wrapping_add(a);
        self.mix ^= b.rotate_left((a & 63) as u32);
    }
}

/// Pages through every stream head of a store.
#[derive(Default)]
struct HeadPages {
    after: Option<StreamId>,
    done: bool,
}

impl HeadPages {
    /// The next page of heads (empty at the end).
    async fn next(&mut self, store: &OpenedStore, what: &str) -> CliResult<Vec<(StreamId, u64)>> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = store
            .stream_heads(self.after.as_ref(), HEADS_PAGE)
            .await
            .doing(&format!("reading the stream heads of the {what}"))?;
        self.done = page.len() < HEADS_PAGE;
        self.after = page.last().map(|(s, _)| s.clone());
        Ok(page)
    }
}

/// The target position of the source's event `stream#sequence`.
async fn target_position_of(
    target: &dyn Store,
    stream: &StreamId,
    sequence: u64,
) -> CliResult<u64> {
    let found = target
        .read_stream(stream, sequence, 1)
        .await
        .doing("reading the target")?;
    match found.first() {
        Some(e) if e.sequence == sequence => Ok(e.position),
        _ => Err(CliError::new(format!(
            "check failed: the target has no event {stream}#{sequence}; run the copy again"
        ))),
    }
}

/// Where a checkpoint at source position `position` goes in the target: after the target's
/// copy of the last source event at or before it.
async fn translate_position(
    source: &dyn Store,
    target: &dyn Store,
    position: u64,
    target_head: u64,
) -> CliResult<u64> {
    if position == 0 {
        return Ok(0);
    }
    let at = source
        .read_all(position, 1)
        .await
        .doing("reading the source")?;
    match at.first() {
        Some(e) if e.position == position => {
            target_position_of(target, &e.stream, e.sequence).await
        }
        // `position` is no event's (a hole): just before the copy of the next event.
        Some(e) => Ok(target_position_of(target, &e.stream, e.sequence)
            .await?
            .saturating_sub(1)),
        None => Ok(target_head),
    }
}

/// Compares source and target by their stream heads (stream count, event count, every
/// stream's version), copying snapshots on the way, then copies the checkpoints with their
/// positions translated. The order of the events was checked as they were written.
async fn check_and_copy_rest(
    source: &OpenedStore,
    target: &OpenedStore,
    options: &CopyOptions,
) -> CliResult<CheckReport> {
    let (s_store, t_store) = (source.store(), target.store());
    let mut report = CheckReport {
        events: 0,
        streams: 0,
        snapshots: 0,
        checkpoints: 0,
    };
    let mut source_digest = HeadsDigest::default();
    let mut snapshots = 0u64;
    let mut pages = HeadPages::default();
    loop {
        let page = pages.next(source, "source").await?;
        if page.is_empty() {
            break;
        }
        for (stream, version) in page {
            source_digest.add(&stream, version);
            if options.snapshots && copy_snapshot(&*s_store, &*t_store, &stream).await? {
                snapshots += 1;
            }
        }
    }
    let mut target_digest = HeadsDigest::default();
    let mut pages = HeadPages::default();
    loop {
        let page = pages.next(target, "target").await?;
        if page.is_empty() {
            break;
        }
        for (stream, version) in page {
            target_digest.add(&stream, version);
        }
    }
    if source_digest != target_digest {
        return Err(mismatch(source, &*t_store, &source_digest, &target_digest).await);
    }
    report.events = source_digest.events;
    report.streams = source_digest.streams;
    report.snapshots = snapshots;
    if options.checkpoints {
        let target_head = t_store
            .head_position()
            .await
            .doing("reading the target's head")?;
        for name in source
            .checkpoint_names()
            .await
            .doing("listing the source's checkpoints")?
        {
            let Some(c) = CheckpointStore::load(&*s_store, &name)
                .await
                .doing(&format!("loading checkpoint {name:?}"))?
            else {
                continue;
            };
            let position =
                translate_position(&*s_store, &*t_store, c.position, target_head).await?;
            CheckpointStore::save(&*t_store, &name, position, c.state)
                .await
                .doing(&format!("saving checkpoint {name:?} in the target"))?;
            report.checkpoints += 1;
        }
    }
    Ok(report)
}

/// The first source stream whose version differs in the target, said in words.
async fn first_difference(source: &OpenedStore, target: &dyn Store) -> CliResult<Option<String>> {
    let mut pages = HeadPages::default();
    loop {
        let page = pages.next(source, "source").await?;
        if page.is_empty() {
            return Ok(None);
        }
        for (stream, version) in page {
            let theirs = target
                .stream_version(&stream)
                .await
                .doing("reading the target")?;
            if theirs != version {
                return Ok(Some(format!(
                    "stream {stream} is at version {version} in the source, {theirs} in the target"
                )));
            }
        }
    }
}

/// The error for two stores whose heads differ, naming the first stream found to differ.
async fn mismatch(
    source: &OpenedStore,
    target: &dyn Store,
    s: &HeadsDigest,
    t: &HeadsDigest,
) -> CliError {
    let counts = format!(
        "the source has {} events in {} streams, the target {} events in {} streams",
        s.events, s.streams, t.events, t.streams
    );
    let detail = match first_difference(source, target).await {
        Err(e) => format!("; and looking for the stream that differs failed: {e}"),
        Ok(Some(stream)) => format!("; {stream}"),
        Ok(None) => "; the target has streams the source does not".to_owned(),
    };
    CliError::new(format!(
        "check failed: {counts}{detail}; run the copy again, or copy into an empty store"
    ))
}

/// Copies the latest snapshot of `stream`, unless the target has it already.
async fn copy_snapshot(
    source: &dyn Store,
    target: &dyn Store,
    stream: &StreamId,
) -> CliResult<bool> {
    let Some(snapshot) = source
        .load_latest(stream)
        .await
        .doing(&format!("loading the snapshot of {stream}"))?
    else {
        return Ok(false);
    };
    let existing = target
        .load_latest(stream)
        .await
        .doing(&format!("loading the target's snapshot of {stream}"))?;
    if existing.as_ref() != Some(&snapshot) {
        SnapshotStore::save(target, snapshot)
            .await
            .doing(&format!("saving the snapshot of {stream} in the target"))?;
    }
    Ok(true)
}

/// `es copy --to URL`.
pub(crate) async fn copy(
    source: &OpenedStore,
    ctx: &mut Ctx,
    to: &str,
    options: &CopyOptions,
) -> CliResult<u8> {
    let started = Instant::now();
    let to_url = es_stores::StoreUrl::parse(to).doing("bad --to URL")?;
    if &to_url == source.url() {
        return Err(CliError::new(
            "--to names the source store itself: give another store",
        ));
    }
    let target = open_store(to, true, true).await?;
    let result = copy_into(source, &target, ctx, options, started).await;
    let closed = crate::close_store(target).await;
    let code = result?;
    closed?;
    Ok(code)
}

async fn copy_into(
    source: &OpenedStore,
    target: &OpenedStore,
    ctx: &mut Ctx,
    options: &CopyOptions,
    started: Instant,
) -> CliResult<u8> {
    let (s_store, t_store) = (source.store(), target.store());
    let (resume_after, _) = resume_point(&*s_store, &*t_store).await?;
    let total = known_count(source).await?;
    let bar = progress(ctx.progress, total, "copy");
    if resume_after > 0 {
        bar.set_position(if total.is_some() { resume_after } else { 0 });
        if !ctx.json {
            eprintln!("resuming the copy after source position {resume_after}");
        }
    }
    let mut pipeline = Pipeline::new(target, bar.clone());
    let mut pages = read_ahead(Arc::clone(&s_store), resume_after + 1, options.page_size);
    while let Some(page) = pages.recv().await {
        let page = page.doing("reading the source")?;
        for e in page {
            let (stream, sequence, event) = format::into_parts(e);
            pipeline.push(stream, sequence, event).await?;
        }
    }
    pipeline.finish().await?;
    let copy_secs = started.elapsed().as_secs_f64();
    bar.set_message("check");
    let copied = pipeline.written;
    let checking = Instant::now();
    let check = check_and_copy_rest(source, target, options).await?;
    let check_secs = checking.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "source": source.url().to_string(),
            "target": target.url().to_string(),
            "copied": copied,
            "events": check.events,
            "streams": check.streams,
            "snapshots": check.snapshots,
            "checkpoints": check.checkpoints,
            "copy_seconds": copy_secs,
            "check_seconds": check_secs,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else {
        ctx.out.line(format!(
            "copied {copied} events ({} already there) from {} to {}",
            check.events - copied,
            source.url(),
            target.url()
        ))?;
        ctx.out.line(format!(
            "checked: {} events and {} streams in both, per-stream versions equal; {} \
             snapshots, {} checkpoints copied",
            check.events, check.streams, check.snapshots, check.checkpoints
        ))?;
        ctx.out.line(format!(
            "events copied in {copy_secs:.2} s, both logs compared in {check_secs:.2} s"
        ))?;
        report(ctx, "done", copied, started)?;
    }
    Ok(EXIT_OK)
}
