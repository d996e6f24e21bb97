//! The stream heads the writer thread knows, so that an append does not search the heads
//! database for the version it is about to overwrite.
//!
//! The writer thread is the only one that writes to the store (other processes are kept out by
//! the lock file), so a head it wrote stays true until it writes the next one. Versions written
//! by a transaction are staged and become known only when the transaction commits; an aborted
//! attempt forgets them. The map is bounded: when it is full it starts over (an unknown stream
//! is read from the database, as without the map).

use std::collections::HashMap;

/// How many streams the writer remembers at most (about 100 bytes each).
const CAPACITY: usize = 100_000;

/// Known stream heads, plus those written by the transaction in progress.
#[derive(Default)]
pub(super) struct Heads {
    known: HashMap<Vec<u8>, u64>,
    staged: HashMap<Vec<u8>, u64>,
}

impl Heads {
    /// Starts an attempt at a transaction: forgets what an earlier attempt staged.
    pub(super) fn begin(&mut self) {
        self.staged.clear();
    }

    /// The version of the stream with `key`, as the transaction in progress sees it, when
    /// known.
    pub(super) fn get(&self, key: &[u8]) -> Option<u64> {
        self.staged
            .get(key)
            .or_else(|| self.known.get(key))
            .copied()
    }

    /// Records that the transaction in progress moved the stream with `key` to `version`.
    pub(super) fn stage(&mut self, key: &[u8], version: u64) {
        match self.staged.get_mut(key) {
            Some(v) => *v = version,
            None => {
                self.staged.insert(key.to_vec(), version);
            }
        }
    }

    /// The transaction committed: what it staged is now known.
    pub(super) fn commit(&mut self) {
        if self.known.len() + self.staged.len() > CAPACITY {
            self.known.clear();
        }
        self.known.extend(self.staged.drain());
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
