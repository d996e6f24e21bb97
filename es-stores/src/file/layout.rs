//! The directory layout of a [`FileStore`](super::FileStore): file names derived from user
//! strings, and durable whole-file replacement.
//!
//! ```text
//! <dir>/LOCK                                   held with an exclusive lock while the store is open
//! <dir>/format                                 the store's format version ("2", or "3" once events were removed, and a newline)
//! <dir>/events.jsonl                           the event log, one JSON object per line
//! <dir>/snapshots/<type>.<id>/<version>.json   one snapshot per file, version zero-padded to 20 digits
//! <dir>/checkpoints/<name>.json                one checkpoint per projection
//! <dir>/truncations.json                       the removals made (format 3), absent when none
//! <dir>/keys/                                  subject keys and erasure records (`DirKeyStore`)
//! ```
//!
//! User strings become file names through `escape`: lowercase ASCII letters, digits, `-` and
//! `_` are kept, every other byte (including `.`, `/`, `\`, `%` and uppercase letters, so that
//! names stay distinct on case-insensitive file systems) becomes `%XX`. An empty string becomes
//! `%`. An escaped name can therefore never be `.`, `..`, contain a separator or start with `.`
//! (temporary files do). Escaped names longer than 160 bytes are cut and end with `~` and a 128-bit
//! hash of the full string, so they stay unique and within file-system limits.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use es_core::store::{StoreError, StreamId};

/// The lock file, held exclusively by the one open store.
pub(super) const LOCK_FILE: &str = "LOCK";
/// The file holding the directory's format version; a directory without one is format 1.
pub(super) const FORMAT_FILE: &str = "format";
/// The format version this code writes: 2 (event lines with the whole envelope). Format 1
/// (no envelope ids or tags, string metadata) is a subset of it, read as it is.
pub(super) const FORMAT_VERSION: u32 = 2;
/// The format a store moves to when it first removes events (placeholder lines, see
/// [`format`](super::format)); read by this code, refused by code that reads only format 2.
pub(super) const REMOVAL_FORMAT_VERSION: u32 = 3;
/// The removals made (`EventStore::truncate_stream`): a JSON array of
/// `es_core::store::lifecycle::Truncation`, replaced atomically; absent when none was made.
pub const TRUNCATIONS_FILE: &str = "truncations.json";
/// The event log.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The directory of snapshot directories (one per stream).
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// The directory of checkpoint files (one per projection).
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Whether `dir` holds a file store (its event log).
pub(crate) fn holds_store(dir: &Path) -> bool {
    dir.join(EVENTS_FILE).is_file()
}

/// The longest escaped name kept whole; longer ones are cut and hashed.
const MAX_NAME: usize = 160;
/// How much of an over-long escaped name is kept before the hash.
const KEPT_PREFIX: usize = 120;

/// Escapes one user string into a file-name-safe component (see the module docs).
pub(super) fn escape(s: &str) -> String {
    if s.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Cuts an over-long name and appends `~` and a hash of `parts` (the unescaped strings).
fn bounded(name: String, parts: &[&str]) -> String {
    if name.len() <= MAX_NAME {
        return name;
    }
    // Escaped names are ASCII, so any byte index is a char boundary.
    let mut out = name[..KEPT_PREFIX].to_owned();
    let _ = write!(out, "~{:032x}", fnv1a_128(parts));
    out
}

/// FNV-1a, 128 bits, over the length-prefixed parts: stable across Rust versions and platforms.
fn fnv1a_128(parts: &[&str]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for b in (part.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(part.as_bytes())
        {
            hash ^= u128::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// The directory name (under `snapshots/`) of a stream's snapshots: `<type>.<id>`, escaped.
pub(super) fn stream_dir_name(stream: &StreamId) -> String {
    let name = format!(
        "{}.{}",
        escape(&stream.aggregate_type),
        escape(&stream.aggregate_id)
    );
    bounded(name, &[&stream.aggregate_type, &stream.aggregate_id])
}

/// The file name of a snapshot at `version`: zero-padded so that `ls` sorts by version.
pub(super) fn snapshot_file_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// The version a snapshot file name stands for, or `None` for other files (temporary files).
pub(super) fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name (under `checkpoints/`) of a projection's checkpoint.
pub(super) fn checkpoint_file_name(name: &str) -> String {
    format!("{}.json", bounded(escape(name), &[name]))
}

/// Replaces `dir/name` with `contents` atomically and durably: writes a temporary file beside
/// it, fsyncs it, renames it over the target and fsyncs the directory. A reader sees the old
/// file or the new one, never a mix, also after a crash.
pub(super) fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the temporary file is ignored by readers anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Checks the format version of the store in `dir` and, when it is older than
/// [`FORMAT_VERSION`] (or not written yet), writes the current one (durably, once: the next
/// open finds it current).
///
/// # Errors
///
/// [`StoreError::Incompatible`] when the directory says a newer format (or something that is
/// not a format version); [`StoreError::Io`] when the file cannot be read or written.
pub(super) fn check_format(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(FORMAT_FILE);
    let version = match fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            text.trim().parse::<u32>().map_err(|_| {
                StoreError::Incompatible(format!(
                    "{} holds {:?}, which is not a format version this es-stores knows",
                    path.display(),
                    text.chars().take(40).collect::<String>()
                ))
            })?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
        Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
    };
    if version > REMOVAL_FORMAT_VERSION {
        return Err(StoreError::Incompatible(format!(
            "{} uses store format version {version}; this version of es-stores reads up to \
             format version {REMOVAL_FORMAT_VERSION}",
            dir.display()
        )));
    }
    if version < FORMAT_VERSION {
        replace_file(dir, FORMAT_FILE, format!("{FORMAT_VERSION}\n").as_bytes())
            .map_err(|e| StoreError::io(format!("writing {}", path.display()), e))?;
        tracing::debug!(dir = %dir.display(), from = version, to = FORMAT_VERSION, "file store format written");
    }
    Ok(())
}

/// Creates directory `dir` if it is missing and, when it was created, fsyncs its parent so the
/// new entry survives a crash.
pub(super) fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => match dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fsyncs a directory, making renames, creations and deletions in it durable.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for fsync on this platform; metadata is journaled by the OS.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `offset` without moving a shared cursor.
#[cfg(unix)]
pub(super) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (positional read).
#[cfg(windows)]
pub(super) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_simple_names_and_blocks_traversal() {
        assert_eq!(escape("bank_account"), "bank_account");
        assert_eq!(escape("acc-1"), "acc-1");
        assert_eq!(escape(""), "%");
        assert_eq!(escape(".."), "%2E%2E");
        assert_eq!(escape("a/b\\c"), "a%2Fb%5Cc");
        assert_eq!(escape("Acc"), "%41cc");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(escape("%"), "%25");
    }

    #[test]
    fn stream_dirs_are_distinct_and_bounded() {
        let a = stream_dir_name(&StreamId::new("a.b", "c"));
        let b = stream_dir_name(&StreamId::new("a", "b.c"));
        assert_ne!(a, b);
        assert_eq!(stream_dir_name(&StreamId::new("", "")), "%.%");
        let long = "x".repeat(1000);
        let l1 = stream_dir_name(&StreamId::new("t", long.clone()));
        let l2 = stream_dir_name(&StreamId::new("t", format!("{long}y")));
        assert!(l1.len() <= MAX_NAME);
        assert_ne!(l1, l2);
        assert!(checkpoint_file_name(&long).len() <= MAX_NAME + 5);
    }

    #[test]
    fn snapshot_names_round_trip() {
        assert_eq!(snapshot_file_name(42), "00000000000000000042.json");
        assert_eq!(
            parse_snapshot_file_name("00000000000000000042.json"),
            Some(42)
        );
        assert_eq!(
            parse_snapshot_file_name(".00000000000000000042.json.1.2.tmp"),
            None
        );
        assert_eq!(parse_snapshot_file_name("42.json"), None);
    }
}
