//! Recovery on open: one pass over the event log rebuilds the [`Index`] and repairs a torn tail.
//!
//! A process that dies in the middle of an append can leave the end of the log as a prefix of
//! what it was writing: a last line that is not valid JSON (cut short, or garbage a file system
//! left after a crash), or an append of several events with only some of its lines. None of
//! that was acknowledged to a caller, so it is cut off (with a warning) and the file is
//! truncated to its last complete append. A last line that is complete but lacks its newline is
//! kept and given one. Anything else that is wrong (a bad line followed by more lines, a last
//! line that is valid JSON but not a valid event, a position or sequence out of order) is
//! reported as [`StoreError::Corrupt`] with the file and line number, and nothing is rewritten.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;

use es_core::store::{StoreError, StreamId};

use serde::de::IgnoredAny;

use super::format::{ScanLine, parse_timestamp};
use super::index::{Index, Line};

/// An append of several events whose lines have not all been seen yet.
struct OpenBatch {
    stream: StreamId,
    /// Offset of the append's first line.
    offset: u64,
    /// Line number of the append's first line.
    line_no: u64,
    /// Lines seen so far.
    seen: u64,
    /// Lines the append wrote.
    size: u64,
}

/// Scans the log in `file` (opened for reading and writing), returns its index and truncates
/// a torn tail.
pub(super) fn scan(file: &File, path: &Path) -> Result<Index, StoreError> {
    let corrupt = |line_no: u64, what: &str| {
        StoreError::Corrupt(format!("{}, line {line_no}: {what}", path.display()))
    };
    let io = |e| StoreError::io(format!("reading {}", path.display()), e);

    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut index = Index::default();
    let mut buf = Vec::with_capacity(4096);
    let mut offset = 0u64;
    let mut line_no = 0u64;
    let mut batch: Option<OpenBatch> = None;
    let mut torn: Option<String> = None;
    let mut missing_newline = false;

    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let (text, last) = match buf.strip_suffix(b"\n") {
            Some(text) => (text, reader.fill_buf().map_err(io)?.is_empty()),
            None => (&buf[..], true),
        };
        let line: ScanLine<'_> = match serde_json::from_slice(text) {
            Ok(line) => line,
            // A prefix of a JSON object is never valid JSON: this is a torn write.
            Err(e) if last && serde_json::from_slice::<IgnoredAny>(text).is_err() => {
                torn = Some(format!("the last line is incomplete ({e})"));
                break;
            }
            Err(e) => return Err(corrupt(line_no, &format!("not a valid event line: {e}"))),
        };
        missing_newline = text.len() == n;

        let expected_position = index.head() + 1;
        if line.position != expected_position {
            return Err(corrupt(
                line_no,
                &format!(
                    "position {} where {expected_position} was expected",
                    line.position
                ),
            ));
        }
        let stream = line.stream.to_stream_id();
        let expected_sequence = index.version(&stream) + 1;
        if line.sequence != expected_sequence {
            return Err(corrupt(
                line_no,
                &format!(
                    "sequence {} of stream {stream} where {expected_sequence} was expected",
                    line.sequence
                ),
            ));
        }
        if !line.removed && line.payload.is_some() == line.payload_base64.is_some() {
            return Err(corrupt(
                line_no,
                "exactly one of `payload` and `payload_base64` must be present",
            ));
        }
        parse_timestamp(&line.timestamp).map_err(|e| corrupt(line_no, &e))?;

        match (&mut batch, line.batch_size) {
            (Some(open), None) if open.stream == stream => open.seen += 1,
            (Some(open), _) => {
                return Err(corrupt(
                    line_no,
                    &format!(
                        "the append of {} events starting at line {} is incomplete",
                        open.size, open.line_no
                    ),
                ));
            }
            (None, Some(0)) => return Err(corrupt(line_no, "batch_size 0")),
            (None, Some(size)) if size > 1 => {
                batch = Some(OpenBatch {
                    stream: stream.clone(),
                    offset,
                    line_no,
                    seen: 1,
                    size,
                });
            }
            (None, _) => {}
        }
        if batch.as_ref().is_some_and(|b| b.seen == b.size) {
            batch = None;
        }

        let len = n as u64 + u64::from(missing_newline);
        index.push(&stream, Line { offset, len });
        if line.removed {
            index.mark_removed(line.position);
        }
        offset += len;
    }

    let mut valid_len = offset;
    if let Some(open) = batch {
        index.pop(
            &open.stream,
            usize::try_from(open.seen).unwrap_or(usize::MAX),
        );
        valid_len = open.offset;
        let reason = format!(
            "the append of {} events starting at line {} has only {} complete lines",
            open.size, open.line_no, open.seen
        );
        torn = Some(match torn {
            Some(first) => format!("{first}, and {reason}"),
            None => reason,
        });
    }
    if let Some(reason) = torn {
        let file_len = file
            .metadata()
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?
            .len();
        tracing::warn!(
            file = %path.display(),
            kept_bytes = valid_len,
            dropped_bytes = file_len.saturating_sub(valid_len),
            "torn write at the end of the event log ({reason}); truncating to the last complete append"
        );
        file.set_len(valid_len)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                StoreError::io(format!("truncating torn tail of {}", path.display()), e)
            })?;
    } else if missing_newline {
        tracing::warn!(
            file = %path.display(),
            line = line_no,
            "the last line of the event log has no trailing newline; adding it"
        );
        // `file` is opened for appending: the newline goes at the end.
        let mut file = file;
        file.write_all(b"\n")
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::io(format!("repairing {}", path.display()), e))?;
    }
    Ok(index)
}
