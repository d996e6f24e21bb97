//! `es copy`: one store into another, resumable, then checked by comparing the two stores'
//! stream heads; snapshots and checkpoints follow (checkpoint positions translated).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use es_core::store::{Checkpoint, CheckpointStore, SnapshotStore, Store, StreamId};
use es_stores::OpenedStore;

use super::pipeline::Pipeline;
use super::source::{known_count, read_ahead};
use super::summary::report;
use crate::context::{Ctx, close_store, open_store};
use crate::error::{CliError, CliResult, EXIT_OK, StoreContext};
use crate::format;
use crate::output::progress;

/// What `copy` copies besides the events.
pub(crate) struct CopyOptions {
    pub(crate) snapshots: bool,
    pub(crate) checkpoints: bool,
    pub(crate) page_size: usize,
    /// Copy the subject keys too (`--with-keys`).
    pub(crate) keys: bool,
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
            let Some(mut c) = CheckpointStore::load(&*s_store, &name)
                .await
                .doing(&format!("loading checkpoint {name:?}"))?
            else {
                continue;
            };
            let position =
                translate_position(&*s_store, &*t_store, c.position, target_head).await?;
            translate_parked(&*s_store, &*t_store, &name, &mut c, target_head).await?;
            CheckpointStore::save(&*t_store, &name, position, c.state)
                .await
                .doing(&format!("saving checkpoint {name:?} in the target"))?;
            report.checkpoints += 1;
        }
    }
    Ok(report)
}

/// Translates the positions of the dead letters parked in checkpoint `name` (events of the
/// log, so each lands on its copy in the target).
async fn translate_parked(
    source: &dyn Store,
    target: &dyn Store,
    name: &str,
    checkpoint: &mut Checkpoint,
    target_head: u64,
) -> CliResult<()> {
    let corrupt = |e: es_core::projection::ProjectionError| {
        CliError::new(format!("checkpoint {name:?}: {e}"))
    };
    let letters = es_core::projection::dead_letters_in(checkpoint).map_err(corrupt)?;
    if letters.is_empty() {
        return Ok(());
    }
    let mut moved = std::collections::HashMap::new();
    for letter in letters {
        let to = translate_position(source, target, letter.position, target_head).await?;
        moved.insert(letter.position, to);
    }
    es_core::projection::translate_dead_letters(checkpoint, |p| moved.get(&p).copied().unwrap_or(p))
        .map_err(corrupt)
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
    let closed = close_store(target).await;
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
    if options.keys {
        let copied = crate::forget::copy_keys(source, target).await?;
        if !ctx.json {
            eprintln!("copied {copied} subject keys");
        }
    }
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
