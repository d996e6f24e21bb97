//! The stream index written behind the log (store format 3).
//!
//! Writing each event's `streams` index entry and its stream's `heads` entry in the commit that
//! appends it dirties an index page and a heads page for every stream a commit touches: with
//! commands spread over many streams, that is most of both databases in every commit, copied
//! and flushed each time (W1 spent four fifths of the writer's work there). Instead the writer
//! keeps the index entries of recent appends in memory, in [`Pending`], and writes them to the
//! two databases in bulk, stream by stream in key order. Once [`LmdbOptions::index_batch`]
//! entries wait, a sweep starts: each of the next commits also writes the pending entries of
//! the next streams in key order, about an eighth of the batch at a time (so that no commit
//! stalls the writer for long), until every stream has been written once. A truncation (which
//! reads the index) and closing the store write everything at once. Each commit that writes to
//! the index raises a generation number in `meta` and records there the position up to which
//! the index holds every event (`indexed_to`).
//!
//! Readers join the two: a stream's entries in the databases as their read transaction sees
//! them, then its pending entries of later sequences at or below the transaction's last log
//! position. Entries are added before the commit that writes their events (so no read of a
//! committed event misses them; a reader's snapshot bounds what it takes) and removed only
//! after the commit that indexed them; a reader whose snapshot's generation is older than the
//! last removal retries with a new snapshot.
//!
//! A crash loses nothing: the log is written durably with every event's stream and sequence,
//! and opening the store writes the index of the events past `indexed_to` before anything else
//! ([`catch_up`]).
//!
//! [`LmdbOptions::index_batch`]: super::LmdbOptions::index_batch

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use es_core::store::StoreError;
use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};
use parking_lot::RwLock;

use super::codec;
use super::open::{Dbs, heed_error};

/// The `meta` key of the position up to which the index holds every event.
pub(super) const INDEXED_TO_KEY: &[u8] = b"indexed_to";
/// The `meta` key of the number of commits that wrote to the index behind the log.
const GENERATION_KEY: &[u8] = b"index_generation";

/// The index entries of one stream that are not in the databases yet.
struct Entries {
    /// The sequence of `positions[0]`.
    first_sequence: u64,
    /// The positions of consecutive sequences, ascending.
    positions: Vec<u64>,
}

impl Entries {
    fn last_sequence(&self) -> u64 {
        self.first_sequence + self.positions.len() as u64 - 1
    }

    /// How many entries are at or below `position`.
    fn up_to(&self, position: u64) -> usize {
        self.positions.partition_point(|&p| p <= position)
    }
}

/// The index entries kept in memory (see the module docs). Shared by the writer, the only one
/// that changes it, and the readers.
#[derive(Default)]
pub(super) struct Pending {
    /// The generation of the last commit that wrote to the index (its entries were removed
    /// from here): a snapshot of an older generation may miss them.
    removed: u64,
    /// By stream key. A hash map: the writer adds to it for every append, and the key order
    /// that sweeps and listings need is cheaper to sort out when they ask.
    streams: HashMap<Vec<u8>, Entries, foldhash::fast::RandomState>,
    /// The entries held, over all streams.
    entries: usize,
}

/// A reader's snapshot is older than the last removal: read again with a new transaction.
pub(super) struct Stale;

/// What a read transaction sees: the index generation it holds and its last log position.
#[derive(Clone, Copy)]
pub(super) struct View {
    generation: u64,
    head: u64,
}

impl View {
    /// The view of `txn`.
    pub(super) fn of(dbs: &Dbs, txn: &RoTxn<'_>) -> Result<View, StoreError> {
        Ok(View {
            generation: meta_u64(dbs.meta, txn, GENERATION_KEY, "the index generation")?
                .unwrap_or(0),
            head: dbs.head_position(txn)?,
        })
    }
}

/// A big-endian `u64` under `key` in `meta`, if any.
fn meta_u64(
    meta: Database<Bytes, Bytes>,
    txn: &RoTxn<'_>,
    key: &[u8],
    what: &str,
) -> Result<Option<u64>, StoreError> {
    match meta
        .get(txn, key)
        .map_err(|e| heed_error(&format!("read {what}"), e))?
    {
        Some(bytes) => codec::be_u64(bytes, what).map(Some),
        None => Ok(None),
    }
}

impl Pending {
    /// How many entries wait.
    pub(super) fn len(&self) -> usize {
        self.entries
    }

    /// The version of the stream keyed `key` as its pending entries tell (written by this
    /// writer: no view needed).
    pub(super) fn version(&self, key: &[u8]) -> Option<u64> {
        self.streams.get(key).map(Entries::last_sequence)
    }

    /// Adds the entries of an append: `count` events of the stream keyed `key` from sequence
    /// `first_sequence` at consecutive positions from `first_position`.
    pub(super) fn add(&mut self, key: &[u8], first_sequence: u64, first_position: u64, count: u64) {
        if count == 0 {
            return;
        }
        let positions = first_position..first_position + count;
        match self.streams.get_mut(key) {
            Some(entries) if entries.last_sequence() + 1 == first_sequence => {
                entries.positions.extend(positions);
            }
            _ => {
                // A stream with no pending entries. (Entries that this append does not
                // continue cannot be: the writer takes the version from them.)
                let replaced = self.streams.insert(
                    key.to_vec(),
                    Entries {
                        first_sequence,
                        positions: positions.collect(),
                    },
                );
                debug_assert!(replaced.is_none(), "pending entries not continued");
                if let Some(replaced) = replaced {
                    self.entries -= replaced.positions.len();
                }
            }
        }
        self.entries += count as usize;
    }

    /// Forgets the entries of positions above `head` (a commit that staged them failed).
    pub(super) fn forget_above(&mut self, head: u64) {
        let mut removed = 0;
        self.streams.retain(|_, entries| {
            let keep = entries.up_to(head);
            removed += entries.positions.len() - keep;
            entries.positions.truncate(keep);
            !entries.positions.is_empty()
        });
        self.entries -= removed;
    }

    /// The positions of the stream keyed `key` from sequence `from` (at most `limit`) that
    /// `view` sees here.
    pub(super) fn positions(
        &self,
        key: &[u8],
        view: View,
        from: u64,
        limit: usize,
    ) -> Result<Vec<u64>, Stale> {
        if self.removed > view.generation {
            return Err(Stale);
        }
        let Some(entries) = self.streams.get(key) else {
            return Ok(Vec::new());
        };
        let skip =
            usize::try_from(from.saturating_sub(entries.first_sequence)).unwrap_or(usize::MAX);
        Ok(entries
            .positions
            .iter()
            .skip(skip)
            .copied()
            .take_while(|&p| p <= view.head)
            .take(limit)
            .collect())
    }

    /// The version of the stream keyed `key` that `view` sees here, if it sees any of its
    /// pending entries.
    pub(super) fn visible_version(&self, key: &[u8], view: View) -> Result<Option<u64>, Stale> {
        if self.removed > view.generation {
            return Err(Stale);
        }
        Ok(self.streams.get(key).and_then(|entries| {
            let seen = entries.up_to(view.head);
            (seen > 0).then(|| entries.first_sequence + seen as u64 - 1)
        }))
    }

    /// The streams whose key is above `after` with pending entries `view` sees, and the
    /// version it sees, in no particular order (the listing merges them into its own ordered
    /// map).
    pub(super) fn visible_heads(
        &self,
        view: View,
        after: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, u64)>, Stale> {
        if self.removed > view.generation {
            return Err(Stale);
        }
        Ok(self
            .streams
            .iter()
            .filter(|(key, _)| after.is_none_or(|after| key.as_slice() > after))
            .filter_map(|(key, entries)| {
                let seen = entries.up_to(view.head);
                (seen > 0).then(|| (key.clone(), entries.first_sequence + seen as u64 - 1))
            })
            .collect())
    }

    /// Every stream key with pending entries, ascending.
    fn sorted_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.streams.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }
}

/// Which streams' pending entries a commit writes to the index.
pub(super) struct Step {
    /// Their keys, ascending.
    keys: Vec<Vec<u8>>,
    /// Where the sweep goes on after this step, in its keys (`None`: it is over).
    next: Option<usize>,
    /// The index generation this commit writes.
    generation: u64,
    /// Every entry at or below this position is written (the head before the commit's own
    /// appends).
    head: u64,
}

/// The writer's side of the index written behind the log: when and what each commit writes.
pub(super) struct IndexWriter {
    pub(super) pending: Arc<RwLock<Pending>>,
    /// [`LmdbOptions::index_batch`](super::LmdbOptions::index_batch).
    batch: usize,
    /// A sweep in progress.
    sweep: Option<Sweep>,
}

/// A sweep: the stream keys that had pending entries when it began, ascending, and how far it
/// has come. (Streams that get pending entries later wait for the next sweep, or for a
/// commit that writes everything.)
struct Sweep {
    keys: Vec<Vec<u8>>,
    next: usize,
}

impl IndexWriter {
    /// The writer's side for a store whose `meta` holds the index generation (read in `txn`).
    pub(super) fn new(
        pending: Arc<RwLock<Pending>>,
        batch: usize,
        dbs: &Dbs,
        txn: &RoTxn<'_>,
    ) -> Result<Self, StoreError> {
        pending.write().removed =
            meta_u64(dbs.meta, txn, GENERATION_KEY, "the index generation")?.unwrap_or(0);
        Ok(Self {
            pending,
            batch,
            sweep: None,
        })
    }

    /// Whether the index is written in every commit.
    pub(super) fn in_each_commit(&self) -> bool {
        self.batch == 0
    }

    /// What the next commit writes to the index, whose log head is `head` before it: every
    /// pending entry when `all`, the next step of a sweep, or nothing.
    pub(super) fn plan(&mut self, head: u64, all: bool) -> Option<Step> {
        let pending = self.pending.read();
        if all || pending.entries >= 4 * self.batch.max(1) {
            // Everything: asked for, or the sweep does not keep up with the appends.
            return Some(Step {
                keys: pending.sorted_keys(),
                next: None,
                generation: pending.removed + 1,
                head,
            });
        }
        if self.sweep.is_none() && pending.entries >= self.batch {
            self.sweep = Some(Sweep {
                keys: pending.sorted_keys(),
                next: 0,
            });
        }
        let sweep = self.sweep.as_ref()?;
        let step = (self.batch / 8).max(1);
        let mut keys = Vec::new();
        let mut taken = 0;
        let mut next = None;
        for (i, key) in sweep.keys.iter().enumerate().skip(sweep.next) {
            if taken >= step {
                next = Some(i);
                break;
            }
            // A stream written since the sweep began (by a commit that wrote everything) has
            // nothing left here.
            if let Some(entries) = pending.streams.get(key) {
                taken += entries.positions.len();
                keys.push(key.clone());
            }
        }
        Some(Step {
            keys,
            next,
            generation: pending.removed + 1,
            head,
        })
    }

    /// Writes the step's entries to the databases in `txn`. `indexed_to` is recorded by
    /// [`IndexWriter::record`].
    pub(super) fn write(
        &self,
        step: &Step,
        dbs: &Dbs,
        txn: &mut RwTxn<'_>,
    ) -> Result<(), heed::Error> {
        let pending = self.pending.read();
        let index = dbs.index.remap_data_type::<Bytes>();
        let heads = dbs.heads.remap_data_type::<Bytes>();
        let mut key_buf = Vec::with_capacity(codec::MAX_STREAM_KEY + 8);
        for key in &step.keys {
            let Some(entries) = pending.streams.get(key) else {
                continue;
            };
            let n = entries.up_to(step.head);
            for (i, position) in entries.positions[..n].iter().enumerate() {
                key_buf.clear();
                key_buf.extend_from_slice(key);
                key_buf.extend_from_slice(&(entries.first_sequence + i as u64).to_be_bytes());
                index.put(txn, &key_buf, &position.to_be_bytes())?;
            }
            if n > 0 {
                let version = entries.first_sequence + n as u64 - 1;
                heads.put(txn, key, &version.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// Records the step's generation and `indexed_to` in `meta`: `head_after` when the commit
    /// writes its own entries to the index too, otherwise the position before the first entry
    /// that stays pending.
    pub(super) fn record(
        &self,
        step: &Step,
        dbs: &Dbs,
        txn: &mut RwTxn<'_>,
        head_after: Option<u64>,
    ) -> Result<(), heed::Error> {
        let indexed_to = head_after.unwrap_or_else(|| {
            let pending = self.pending.read();
            pending
                .streams
                .iter()
                .filter(|(key, _)| step.keys.binary_search(key).is_err())
                .filter_map(|(_, entries)| entries.positions.first())
                .map(|first| first - 1)
                .min()
                .unwrap_or(step.head)
                .min(step.head)
        });
        dbs.meta
            .put(txn, INDEXED_TO_KEY, &indexed_to.to_be_bytes())?;
        dbs.meta
            .put(txn, GENERATION_KEY, &step.generation.to_be_bytes())
    }

    /// The commit that wrote `step` succeeded: its entries leave [`Pending`] and the sweep
    /// moves on.
    pub(super) fn committed(&mut self, step: Step) {
        let mut pending = self.pending.write();
        let mut removed = 0;
        for key in &step.keys {
            let Some(entries) = pending.streams.get_mut(key.as_slice()) else {
                continue;
            };
            let n = entries.up_to(step.head);
            entries.positions.drain(..n);
            entries.first_sequence += n as u64;
            removed += n;
            if entries.positions.is_empty() {
                pending.streams.remove(key.as_slice());
            }
        }
        pending.entries -= removed;
        pending.removed = step.generation;
        drop(pending);
        self.sweep = match (self.sweep.take(), step.next) {
            (Some(sweep), Some(next)) => Some(Sweep { next, ..sweep }),
            _ => None,
        };
    }
}

/// Writes the index of every event past `indexed_to` (those a crash left unindexed; some may
/// be indexed already) and records the new `indexed_to`, in `txn`. Returns how many events it
/// read.
pub(super) fn catch_up(dbs: &Dbs, txn: &mut RwTxn<'_>) -> Result<u64, StoreError> {
    const WHAT: &str = "index the events written after the last index flush";
    let head = dbs.head_position(txn)?;
    let Some(from) = meta_u64(dbs.meta, txn, INDEXED_TO_KEY, "the indexed position")? else {
        // Format 2: indexed in every commit.
        dbs.meta
            .put(txn, INDEXED_TO_KEY, &head.to_be_bytes())
            .map_err(|e| heed_error(WHAT, e))?;
        return Ok(0);
    };
    if from >= head {
        return Ok(0);
    }
    // stream key → (sequence → position), for the events past `from`.
    let mut found: BTreeMap<Vec<u8>, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut count = 0;
    for entry in dbs
        .events
        .range(txn, &(from + 1..))
        .map_err(|e| heed_error(WHAT, e))?
    {
        let (position, bytes) = entry.map_err(|e| heed_error(WHAT, e))?;
        let event = codec::decode_event(bytes, position)?;
        found
            .entry(codec::stream_key(&event.stream))
            .or_default()
            .insert(event.sequence, position);
        count += 1;
    }
    let index = dbs.index.remap_data_type::<Bytes>();
    let heads = dbs.heads.remap_data_type::<Bytes>();
    for (key, sequences) in &found {
        for (sequence, position) in sequences {
            index
                .put(
                    txn,
                    &codec::suffixed(key, *sequence),
                    &position.to_be_bytes(),
                )
                .map_err(|e| heed_error(WHAT, e))?;
        }
        if let Some(version) = sequences.keys().next_back() {
            let known = dbs.heads.get(txn, key).map_err(|e| heed_error(WHAT, e))?;
            if known.is_none_or(|known| known < *version) {
                heads
                    .put(txn, key, &version.to_be_bytes())
                    .map_err(|e| heed_error(WHAT, e))?;
            }
        }
    }
    dbs.meta
        .put(txn, INDEXED_TO_KEY, &head.to_be_bytes())
        .map_err(|e| heed_error(WHAT, e))?;
    Ok(count)
}
