//! The stream heads the writer thread knows, so that an append does not search the heads
//! database for the version it is about to overwrite.
//!
//! The writer thread is the only one that writes to the store (other processes are kept out by
//! the lock file), so a head it wrote stays true until it writes the next one. An attempt at a
//! transaction updates the map as it writes; when the attempt does not commit (it is replayed
//! after growing the map or without a failed request), the whole map is forgotten, which is
//! rare and costs one database search per stream afterwards. The map is bounded: when it is
//! full it starts over.

use std::collections::HashMap;

use foldhash::fast::RandomState;

/// How many streams the writer remembers at most (about 100 bytes each).
const CAPACITY: usize = 100_000;

/// Known stream heads, including those written by the transaction in progress.
#[derive(Default)]
pub(super) struct Heads {
    known: HashMap<Vec<u8>, u64, RandomState>,
    /// Whether an attempt wrote to the map and has not committed.
    uncommitted: bool,
}

impl Heads {
    /// Starts an attempt at a transaction: forgets everything when the last one did not
    /// commit.
    pub(super) fn begin(&mut self) {
        if self.uncommitted || self.known.len() >= CAPACITY {
            self.known.clear();
        }
        self.uncommitted = true;
    }

    /// The version of the stream with `key`, as the transaction in progress sees it, when
    /// known.
    pub(super) fn get(&self, key: &[u8]) -> Option<u64> {
        self.known.get(key).copied()
    }

    /// Records that the transaction in progress moved the stream with `key` to `version`.
    pub(super) fn stage(&mut self, key: &[u8], version: u64) {
        match self.known.get_mut(key) {
            Some(v) => *v = version,
            None => {
                self.known.insert(key.to_vec(), version);
            }
        }
    }

    /// The transaction committed: what it wrote stays known.
    pub(super) fn commit(&mut self) {
        self.uncommitted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::Heads;

    #[test]
    fn staged_versions_are_seen_at_once_and_kept_only_after_a_commit() {
        let mut heads = Heads::default();
        heads.begin();
        assert_eq!(heads.get(b"a"), None);
        heads.stage(b"a", 3);
        assert_eq!(
            heads.get(b"a"),
            Some(3),
            "later appends of the batch see it"
        );
        // The attempt is aborted and replayed: nothing staged survives.
        heads.begin();
        assert_eq!(heads.get(b"a"), None);
        heads.stage(b"a", 2);
        heads.stage(b"a", 4);
        heads.commit();
        heads.begin();
        assert_eq!(heads.get(b"a"), Some(4));
    }

    #[test]
    fn a_full_map_starts_over_instead_of_growing() {
        let mut heads = Heads::default();
        for i in 0..super::CAPACITY + 10 {
            heads.begin();
            heads.stage(&i.to_be_bytes(), 1);
            heads.commit();
        }
        assert!(heads.known.len() <= super::CAPACITY);
        heads.begin();
        assert_eq!(heads.get(&(super::CAPACITY + 9).to_be_bytes()), Some(1));
    }
}
