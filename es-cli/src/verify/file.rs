//! `verify` on a file store: its files are read as they are, without opening the store (which
//! would repair a torn last line), so every bad line is reported by number and nothing changes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use es_core::store::lifecycle::Truncation;
use es_stores::file::format::{CheckpointDoc, EventLine, SnapshotDoc};
use es_stores::file::layout::{CHECKPOINTS_DIR, EVENTS_FILE, SNAPSHOTS_DIR, TRUNCATIONS_FILE};
use serde::de::IgnoredAny;

use super::checker::{Checker, declared_binary};
use crate::error::{CliError, CliResult};
use crate::output::progress;

/// Checks the file store in `dir`; returns how many snapshot files and checkpoints it read.
pub(crate) fn check(
    dir: &Path,
    checker: &mut Checker,
    show_progress: bool,
) -> CliResult<(u64, u64)> {
    read_removals(dir, checker)?;
    let path = dir.join(EVENTS_FILE);
    let file =
        File::open(&path).map_err(|e| CliError::new(format!("opening {}: {e}", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(show_progress, None, "verify");
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    let mut number = 0u64;
    let mut offset = 0u64;
    let mut head = 0u64;
    let forgotten = super::pii::forgotten_in_dir(dir);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::new(format!("reading {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        number += 1;
        offset += n as u64;
        bar.inc(1);
        let complete = buf.ends_with(b"\n");
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let at = || format!("{EVENTS_FILE} line {number}");
        let line: EventLine<'_> = match serde_json::from_slice(text) {
            Ok(line) => line,
            Err(e) => {
                let problem = if !complete && offset == size {
                    format!(
                        "the last line is incomplete (an append cut short by a crash; the store \
                         drops it when next opened): {e}"
                    )
                } else {
                    format!("not a valid event line: {e}")
                };
                checker.find(at(), problem);
                continue;
            }
        };
        let stream = line.stream.to_stream_id();
        if let Err(e) = stream.validate() {
            checker.find(at(), e.to_string());
        }
        let payload_is_json = || match (&line.payload, &line.payload_base64) {
            (Some(_), None) => true,
            (None, Some(b64)) => BASE64
                .decode(b64.as_bytes())
                .is_ok_and(|bytes| serde_json::from_slice::<IgnoredAny>(&bytes).is_ok()),
            _ => false,
        };
        if line.removed {
            // A removed event's placeholder: fine when a recorded removal covers it.
            let covered = checker
                .truncated
                .get(&stream)
                .is_some_and(|&before| line.sequence < before);
            if !covered {
                checker.find(
                    at(),
                    format!(
                        "stream {stream}#{}: the event was removed but {TRUNCATIONS_FILE} \
                         records no removal covering it",
                        line.sequence
                    ),
                );
            }
        } else if line.payload.is_some() == line.payload_base64.is_some() {
            checker.find(
                at(),
                "the line needs exactly one of `payload` and `payload_base64`",
            );
        }
        super::pii::check_json(checker, at, "the event", text, &forgotten);
        checker.event(
            at,
            line.position,
            &stream,
            line.sequence,
            || line.removed || payload_is_json(),
            || declared_binary(&line.metadata),
        );
        head = head.max(line.position);
    }
    bar.finish_and_clear();

    let snapshots = check_snapshots(dir, checker, &forgotten)?;
    let checkpoints = check_checkpoints(dir, checker, head)?;
    Ok((snapshots, checkpoints))
}

/// Lists the `.json` files of a directory (none when it does not exist), sorted.
/// Reads `truncations.json` (absent: none) into the checker; a file that does not parse is a
/// finding.
fn read_removals(dir: &Path, checker: &mut Checker) -> CliResult<()> {
    let path = dir.join(TRUNCATIONS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CliError::new(format!("reading {}: {e}", path.display()))),
    };
    match serde_json::from_slice::<Vec<Truncation>>(&bytes) {
        Ok(list) => checker.removals(list.into_iter().map(|t| (t.stream, t.before))),
        Err(e) => checker.find(TRUNCATIONS_FILE, format!("not a list of truncations: {e}")),
    }
    Ok(())
}

fn json_files(dir: &Path) -> CliResult<Vec<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::new(format!("listing {}: {e}", dir.display()))),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CliError::new(format!("listing {}: {e}", dir.display())))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() || (!name.starts_with('.') && name.ends_with(".json")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn check_snapshots(
    dir: &Path,
    checker: &mut Checker,
    forgotten: &std::collections::HashSet<String>,
) -> CliResult<u64> {
    let mut count = 0;
    for stream_dir in json_files(&dir.join(SNAPSHOTS_DIR))? {
        if !stream_dir.is_dir() {
            continue;
        }
        for file in json_files(&stream_dir)? {
            let shown = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            let text = std::fs::read(&file)
                .map_err(|e| CliError::new(format!("reading {}: {e}", file.display())))?;
            count += 1;
            super::pii::check_snapshot_file(checker, &shown, &text, forgotten);
            match serde_json::from_slice::<SnapshotDoc<'_>>(&text) {
                Ok(snap) => {
                    let stream = snap.stream.to_stream_id();
                    let last = checker.stream_version(&stream);
                    if snap.version > last {
                        checker.find(
                            shown,
                            format!(
                                "snapshot of {stream} at version {} but the stream ends at {last}",
                                snap.version
                            ),
                        );
                    }
                }
                Err(e) => checker.find(shown, format!("not a valid snapshot file: {e}")),
            }
        }
    }
    Ok(count)
}

fn check_checkpoints(dir: &Path, checker: &mut Checker, head: u64) -> CliResult<u64> {
    let mut count = 0;
    for file in json_files(&dir.join(CHECKPOINTS_DIR))? {
        if file.is_dir() {
            continue;
        }
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read(&file)
            .map_err(|e| CliError::new(format!("reading {}: {e}", file.display())))?;
        count += 1;
        match serde_json::from_slice::<CheckpointDoc<'_>>(&text) {
            Ok(c) if c.position > head => checker.find(
                shown,
                format!(
                    "checkpoint of projection {:?} at position {} is ahead of the head {head}",
                    c.name, c.position
                ),
            ),
            Ok(_) => {}
            Err(e) => checker.find(shown, format!("not a valid checkpoint file: {e}")),
        }
    }
    Ok(count)
}
