//! Removing events (`EventStore::truncate_stream`) from the append-only log.
//!
//! The log is never rewritten as a whole: each removed event's line is overwritten in place by
//! a placeholder of the same length (see [`format`](super::format)), which keeps its
//! position, stream, sequence, type, version and timestamp and drops its metadata, envelope
//! and payload. Offsets of every other line stay, so the writer appends on as before.
//!
//! Crash safety: the removal is first recorded in `truncations.json` (replaced atomically:
//! temporary file, fsync, rename, fsync of the directory), and the store is marked format 3;
//! then the lines are overwritten and the log is synced. The record is the redo log: opening
//! the store finishes every recorded removal ([`recover`]), so after a crash at any point the
//! removal either did not happen (the record was not durable) or happens completely.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use chrono::Utc;
use es_core::store::lifecycle::Truncation;
use es_core::store::{StoreError, StreamId};
use serde::Serialize;

use super::format::{EventLine, StreamField};
use super::index::{Index, Line};
use super::layout::{
    FORMAT_FILE, REMOVAL_FORMAT_VERSION, TRUNCATIONS_FILE, read_exact_at, replace_file,
};
use super::state::State;

/// The placeholder a removed event's line is overwritten with.
#[derive(Serialize)]
struct RemovedLine<'a> {
    position: u64,
    stream: &'a StreamField<'a>,
    sequence: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    version: u32,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<u64>,
    removed: bool,
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let context = format!("{what} {}", path.display());
    move |e| StoreError::io(context, e)
}

/// The removals recorded in `dir` (none when the file is absent).
pub(super) fn read_truncations(dir: &Path) -> Result<Vec<Truncation>, StoreError> {
    let path = dir.join(TRUNCATIONS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Corrupt(format!(
                "{}: not a list of truncations: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("reading", &path)(e)),
    }
}

/// Records that the events of `stream` before `before` are removed (keeping the highest
/// `before` per stream), durably, and marks the store format 3.
fn record(dir: &Path, stream: &StreamId, before: u64) -> Result<(), StoreError> {
    let format = dir.join(FORMAT_FILE);
    let current = fs::read_to_string(&format).unwrap_or_default();
    if current.trim().parse::<u32>().unwrap_or(0) < REMOVAL_FORMAT_VERSION {
        replace_file(
            dir,
            FORMAT_FILE,
            format!("{REMOVAL_FORMAT_VERSION}\n").as_bytes(),
        )
        .map_err(io_error("writing", &format))?;
    }
    let mut all = read_truncations(dir)?;
    match all.iter_mut().find(|t| &t.stream == stream) {
        Some(t) => {
            t.before = t.before.max(before);
            t.at = Utc::now();
        }
        None => all.push(Truncation {
            stream: stream.clone(),
            before,
            at: Utc::now(),
        }),
    }
    let json = serde_json::to_vec_pretty(&all)
        .map_err(|e| StoreError::InvalidInput(format!("cannot encode the truncations: {e}")))?;
    replace_file(dir, TRUNCATIONS_FILE, &json)
        .map_err(io_error("writing", &dir.join(TRUNCATIONS_FILE)))
}

/// The lines of `stream` before sequence `before` that are not removed yet.
fn doomed(index: &Index, stream: &StreamId, before: u64) -> Vec<(u64, Line)> {
    let end = usize::try_from(before.saturating_sub(1)).unwrap_or(usize::MAX);
    index.positions(stream).map_or_else(Vec::new, |positions| {
        positions
            .iter()
            .take(end)
            .filter_map(|&p| index.line(p).map(|line| (p, line)))
            .collect()
    })
}

/// Overwrites each line of `lines` (of `stream`) in the log at `path` with its placeholder,
/// then syncs the log. `reader` reads the lines first (to keep what the placeholder keeps).
fn blank(
    path: &Path,
    reader: &File,
    stream: &StreamId,
    lines: &[(u64, Line)],
) -> Result<(), StoreError> {
    let writer = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("opening", path))?;
    let corrupt = |position: u64, what: &str| {
        StoreError::Corrupt(format!("{}, line {position}: {what}", path.display()))
    };
    let mut buf = Vec::new();
    for &(position, line) in lines {
        buf.resize(usize::try_from(line.len).unwrap_or(0), 0);
        read_exact_at(reader, &mut buf, line.offset).map_err(io_error("reading", path))?;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let event: EventLine<'_> = serde_json::from_slice(text)
            .map_err(|e| corrupt(position, &format!("not a valid event line: {e}")))?;
        if event.position != position || !event.stream.is(stream) {
            return Err(corrupt(position, "the index does not match the line"));
        }
        let mut placeholder = serde_json::to_vec(&RemovedLine {
            position,
            stream: &event.stream,
            sequence: event.sequence,
            event_type: &event.event_type,
            version: event.version,
            timestamp: &event.timestamp[..],
            batch_size: event.batch_size,
            removed: true,
        })
        .map_err(|e| corrupt(position, &format!("cannot write its placeholder: {e}")))?;
        // Shorter than the line it replaces: it drops the metadata (always written) and the
        // payload, and adds only `"removed":true`. Checked all the same.
        if placeholder.len() >= buf.len() {
            return Err(corrupt(position, "the placeholder would not fit the line"));
        }
        placeholder.resize(buf.len() - 1, b' ');
        placeholder.push(b'\n');
        write_all_at(&writer, &placeholder, line.offset).map_err(io_error("writing", path))?;
    }
    writer.sync_data().map_err(io_error("syncing", path))
}

impl State {
    /// Removes the events of `stream` below sequence `before` (`EventStore::truncate_stream`).
    pub(super) fn truncate(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        // Exclusive for the whole removal: one removal at a time, and no reader meets a line
        // while it is overwritten. Appends go on (they only add lines after these).
        let _exclusive = self.rewrite.write();
        let lines = {
            let index = self.index.read();
            let version = index.version(stream);
            if before > version {
                return Err(StoreError::InvalidInput(format!(
                    "cannot remove the events of {stream} before sequence {before}: its \
                     version is {version}, and its last event is always kept"
                )));
            }
            doomed(&index, stream, before)
        };
        if lines.is_empty() {
            return Ok(0);
        }
        record(&self.dir, stream, before)?;
        blank(&self.events_path, &self.reader, stream, &lines)?;
        let mut index = self.index.write();
        for &(position, _) in &lines {
            index.mark_removed(position);
        }
        Ok(lines.len() as u64)
    }
}

/// On open, after the scan: finishes every recorded removal that a crash interrupted.
pub(super) fn recover(dir: &Path, path: &Path, mut index: Index) -> Result<Index, StoreError> {
    let truncations = read_truncations(dir)?;
    if truncations.is_empty() {
        return Ok(index);
    }
    let reader = File::open(path).map_err(io_error("opening", path))?;
    for t in truncations {
        let lines = doomed(&index, &t.stream, t.before);
        if lines.is_empty() {
            continue;
        }
        tracing::warn!(stream = %t.stream, before = t.before, lines = lines.len(), "file store: finishing an interrupted removal of events");
        blank(path, &reader, &t.stream, &lines)?;
        for &(position, _) in &lines {
            index.mark_removed(position);
        }
    }
    Ok(index)
}

/// Writes all of `buf` at `offset` (positional write).
#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

/// Writes all of `buf` at `offset` (positional write).
#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
