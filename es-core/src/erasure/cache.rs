//! The kernel's cache of subject keys.
//!
//! It holds, per subject, the key last read (or the fact that there is none) for at most its
//! time to live. A `forget` through the same kernel removes the subject's entry at once, and a
//! lookup that started before a `forget` finished does not put the old key back. A `forget`
//! made elsewhere (another node sharing a PostgreSQL store, `es forget`) is seen by this cache
//! after the time to live at the latest; a time to live of zero turns the cache off (every page
//! read then looks its keys up once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::SubjectKey;

/// The most entries kept; past it the cache starts again empty.
const MAX_ENTRIES: usize = 100_000;

/// Subject keys (or their absence), each until its time to live runs out.
#[derive(Debug)]
pub(crate) struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<SubjectKey>, Instant)>>,
    /// Raised by every forget: a lookup that began under an older epoch caches nothing.
    epoch: AtomicU64,
}

impl KeyCache {
    /// A cache keeping entries for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// The current epoch, to pass to [`KeyCache::put`] after a lookup.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The cached entry of `subject`: `Some(None)` when it is known to have no key.
    pub(crate) fn get(&self, subject: &str) -> Option<Option<SubjectKey>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        let (key, at) = entries.get(subject)?;
        (at.elapsed() < self.ttl).then(|| key.clone())
    }

    /// Caches what a lookup begun at `epoch` found, unless a forget happened since.
    pub(crate) fn put(&self, epoch: u64, subject: &str, key: Option<SubjectKey>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(subject.to_owned(), (key, Instant::now()));
    }

    /// Drops `subject`'s entry and stops lookups in flight from caching anything.
    pub(crate) fn forgotten(&self, subject: &str) {
        let mut entries = self.entries.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(subject);
    }
}
