//! Keeping a long scan of the log from filling the process's resident memory with the memory
//! map's pages.
//!
//! LMDB reads through a read-only shared memory map of `data.mdb`: every page a scan touches
//! stays mapped in the process (and counts in its RSS) until the environment closes, so
//! replaying a 1 GiB log leaves 1 GiB resident, although the kernel may drop those pages at any
//! time (they are clean page-cache pages). [`ScannedPages`] notes the address range of the
//! records each log scan read and, once about [`RELEASE_AFTER`] bytes were scanned, tells the
//! kernel with `madvise(MADV_DONTNEED)` that the process no longer needs that range. The pages
//! stay in the page cache; a later read of them faults them back in with the same bytes.
//!
//! This is sound for a shared, read-only file mapping: `MADV_DONTNEED` drops only the process's
//! page-table entries, and the next access reads the page from the file again. The store never
//! writes through the map (it never sets `MDB_WRITEMAP`: LMDB writes with `pwrite`), and LMDB
//! never rewrites a page that a live read transaction can see, so even a slice that another
//! reader still borrows reads the same bytes after the release. The range is released under a
//! shared hold of the resize gate, so the writer cannot remap the environment (and another
//! mapping cannot take its addresses) between finding the mapping and advising it; and only
//! the part of the range that lies inside the shared mapping of this store's `data.mdb` (found
//! in `/proc/self/maps` by device and inode) is advised. On systems other than Linux this does
//! nothing.

use parking_lot::{Mutex, RwLock};

/// How many bytes of records a log scan reads between two releases of the pages it touched.
pub(super) const RELEASE_AFTER: u64 = if cfg!(test) { 64 << 10 } else { 1 << 20 };

/// Widening of a released range on each side, past the records read: the kernel maps a few
/// neighbouring pages on each fault (fault-around, 64 KiB by default).
const MARGIN: usize = 64 << 10;

/// The address range of the records read since the last release.
#[derive(Debug, Default)]
struct Touched {
    start: usize,
    end: usize,
    bytes: u64,
}

/// What log scans touched of the memory map, released every [`RELEASE_AFTER`] bytes.
#[derive(Debug)]
pub(super) struct ScannedPages {
    /// `data.mdb`'s device and inode (`None`: unknown, nothing is released).
    file: Option<(u64, u64)>,
    touched: Mutex<Touched>,
}

/// The address range `[start, end)` of records read by one chunk of a scan, and their size.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReadRange {
    start: usize,
    end: usize,
    bytes: u64,
}

impl ReadRange {
    /// Adds a record read from the map.
    pub(super) fn add(&mut self, record: &[u8]) {
        let start = record.as_ptr() as usize;
        let end = start.saturating_add(record.len());
        if self.bytes == 0 {
            (self.start, self.end) = (start, end);
        } else {
            self.start = self.start.min(start);
            self.end = self.end.max(end);
        }
        self.bytes += record.len() as u64 + 16;
    }
}

impl ScannedPages {
    /// For the store whose data file is `data_file`.
    pub(super) fn new(data_file: &std::path::Path) -> Self {
        Self {
            file: file_id(data_file),
            touched: Mutex::new(Touched::default()),
        }
    }

    /// Releasing nothing ([`LmdbOptions::release_scanned_pages`] is off).
    ///
    /// [`LmdbOptions::release_scanned_pages`]: super::LmdbOptions::release_scanned_pages
    pub(super) fn off() -> Self {
        Self {
            file: None,
            touched: Mutex::new(Touched::default()),
        }
    }

    /// Notes what a chunk of a scan read; releases what the scans touched once they read
    /// [`RELEASE_AFTER`] bytes. Call it after the chunk's read transaction ended.
    pub(super) fn note(&self, read: ReadRange, resize_gate: &RwLock<()>) {
        if read.bytes == 0 || self.file.is_none() {
            return;
        }
        let range = {
            let mut touched = self.touched.lock();
            if touched.bytes == 0 {
                (touched.start, touched.end) = (read.start, read.end);
            } else {
                touched.start = touched.start.min(read.start);
                touched.end = touched.end.max(read.end);
            }
            touched.bytes += read.bytes;
            if touched.bytes < RELEASE_AFTER {
                return;
            }
            let range = (touched.start, touched.end);
            *touched = Touched::default();
            range
        };
        self.release(
            range.0.saturating_sub(MARGIN),
            range.1.saturating_add(MARGIN),
            resize_gate,
        );
    }

    /// Releases the pages of `[start, end)` that lie in the shared mapping of `data.mdb`.
    pub(super) fn release(&self, start: usize, end: usize, resize_gate: &RwLock<()>) {
        let Some(file) = self.file else {
            return;
        };
        // The writer resizes (remaps) the environment only under the exclusive hold.
        let _gate = resize_gate.read();
        release_in_mapping(file, start, end);
    }

    /// Releases every page of the map this process holds (for tests).
    #[cfg(test)]
    pub(super) fn release_all(&self, resize_gate: &RwLock<()>) {
        self.release(0, usize::MAX, resize_gate);
    }
}

/// The device and inode of `path`.
#[cfg(target_os = "linux")]
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::stat(path).ok()?;
    #[allow(clippy::useless_conversion)] // `st_dev` and `st_ino` are not `u64` everywhere
    Some((u64::from(stat.st_dev), u64::from(stat.st_ino)))
}

#[cfg(not(target_os = "linux"))]
fn file_id(_path: &std::path::Path) -> Option<(u64, u64)> {
    None
}

/// A mapping of `/proc/self/maps`: `[start, end)`, whether it is shared, and the device and
/// inode of its file.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    shared: bool,
    file: (u64, u64),
}

/// Parses one line of `/proc/self/maps`:
/// `start-end perms offset major:minor inode [path]` (numbers in hex but the inode).
fn parse_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let inode = fields.next()?.parse::<u64>().ok()?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    Some(Mapping {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        shared: perms.as_bytes().get(3) == Some(&b's'),
        file: (device(major, minor), inode),
    })
}

/// A device number from its major and minor numbers (as `stat` gives it).
#[cfg(target_os = "linux")]
fn device(major: u32, minor: u32) -> u64 {
    #[allow(clippy::useless_conversion)]
    u64::from(rustix::fs::makedev(major, minor))
}

#[cfg(not(target_os = "linux"))]
fn device(_major: u32, _minor: u32) -> u64 {
    0
}

/// `madvise(MADV_DONTNEED)` on the pages of `[start, end)` inside the shared mappings of
/// `file`.
#[cfg(target_os = "linux")]
fn release_in_mapping(file: (u64, u64), start: usize, end: usize) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let page = rustix::param::page_size();
    for mapping in maps.lines().filter_map(parse_mapping) {
        if mapping.file != file || !mapping.shared {
            continue;
        }
        // Whole pages only: round the start up and the end down (the mapping is page-aligned).
        let from = start.max(mapping.start).next_multiple_of(page);
        let to = end.min(mapping.end) / page * page;
        if from >= to {
            continue;
        }
        // SAFETY: `[from, to)` is page-aligned and lies inside a shared mapping of this store's
        // `data.mdb`, which the store never writes through (no `MDB_WRITEMAP`); the resize gate
        // is held, so the environment is not remapped meanwhile. `MADV_DONTNEED` on a shared
        // file mapping drops only page-table entries: the next access reads the same bytes
        // from the page cache or the file, so no memory that anything reads changes (see the
        // module docs).
        #[allow(unsafe_code)]
        let advised = unsafe {
            rustix::mm::madvise(
                from as *mut core::ffi::c_void,
                to - from,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        if let Err(error) = advised {
            tracing::debug!(%error, "lmdb: releasing scanned pages failed");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn release_in_mapping(_file: (u64, u64), _start: usize, _end: usize) {}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let line = "7f12a0000000-7f12e0000000 r--s 00000000 fd:01 1234567     /tmp/a b/data.mdb";
        let m = parse_mapping(line);
        assert_eq!(
            m,
            Some(Mapping {
                start: 0x7f12_a000_0000,
                end: 0x7f12_e000_0000,
                shared: true,
                file: (device(0xfd, 1), 1_234_567),
            })
        );
        let private = parse_mapping("00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/x");
        assert!(private.is_some_and(|m| !m.shared));
        assert_eq!(parse_mapping("7ffd1000-7ffd2000 rw-p 00000000 00:00 0"), {
            Some(Mapping {
                start: 0x7ffd_1000,
                end: 0x7ffd_2000,
                shared: false,
                file: (device(0, 0), 0),
            })
        });
        assert_eq!(parse_mapping("garbage"), None);
    }

    /// The resident size of the shared mappings of the `data.mdb` whose scans `pages` releases,
    /// from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    pub(in crate::lmdb) fn resident(pages: &ScannedPages) -> u64 {
        let Some(file) = pages.file else {
            panic!("data.mdb not found");
        };
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut ours = false;
        let mut kib = 0;
        for line in smaps.lines() {
            if let Some(mapping) = parse_mapping(line) {
                ours = mapping.file == file && mapping.shared;
            } else if ours && let Some(rest) = line.strip_prefix("Rss:") {
                kib += rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
            }
        }
        kib << 10
    }

    #[test]
    fn read_ranges_cover_their_records() {
        let data = [0u8; 100];
        let mut range = ReadRange::default();
        range.add(&data[10..20]);
        range.add(&data[50..60]);
        range.add(&data[30..31]);
        let base = data.as_ptr() as usize;
        assert_eq!((range.start - base, range.end - base), (10, 60));
        assert_eq!(range.bytes, 21 + 3 * 16);
    }
}
