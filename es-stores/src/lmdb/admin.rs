//! What an operator tool reads beyond the store traits: the names of the saved checkpoints
//! and the stream heads.

use std::collections::BTreeMap;
use std::ops::Bound;

use es_core::store::{StoreError, StreamId};

use super::LmdbStore;
use super::codec;
use super::open::heed_error;
use super::pending::View;

impl LmdbStore {
    /// The names of the projections that have a saved checkpoint, in key order. Blocks the
    /// calling thread for one short read transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a key that is not a checkpoint key, and LMDB read errors.
    pub fn checkpoint_names(&self) -> Result<Vec<String>, StoreError> {
        const WHAT: &str = "list the checkpoints";
        let shared = &self.inner;
        let _gate = shared.resize_gate.read();
        let txn = shared.env.read_txn().map_err(|e| heed_error(WHAT, e))?;
        let mut names = Vec::new();
        for entry in shared
            .dbs
            .checkpoints
            .iter(&txn)
            .map_err(|e| heed_error(WHAT, e))?
        {
            let (key, _) = entry.map_err(|e| heed_error(WHAT, e))?;
            let name = key
                .strip_prefix(b"p")
                .and_then(|name| std::str::from_utf8(name).ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("lmdb: a checkpoint key is not a name: {key:?}"))
                })?;
            names.push(name.to_owned());
        }
        Ok(names)
    }

    /// Up to `limit` streams and their versions, in key order (see the codec), after `after`
    /// (from the first when `None`): one read of the heads database, no event is read.
    /// Blocks the calling thread for one short read transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a head key that is not a stream key, and LMDB read errors.
    pub fn stream_heads(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<(StreamId, u64)>, StoreError> {
        const WHAT: &str = "list the stream heads";
        let shared = &self.inner;
        let after_key = after.map(codec::stream_key);
        let start = match &after_key {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let range = (start, Bound::Unbounded);
        loop {
            let _gate = shared.resize_gate.read();
            let txn = shared.env.read_txn().map_err(|e| heed_error(WHAT, e))?;
            let view = View::of(&shared.dbs, &txn)?;
            // The streams the index does not list yet, or at an older version (see
            // `pending.rs`); the first `limit` of the two together are among the first `limit`
            // of each.
            let Ok(pending) = shared
                .pending
                .read()
                .visible_heads(view, after_key.as_deref())
            else {
                // This snapshot predates the last index flush: read again.
                continue;
            };
            let mut heads: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for entry in shared
                .dbs
                .heads
                .range(&txn, &range)
                .map_err(|e| heed_error(WHAT, e))?
                .take(limit)
            {
                let (key, version) = entry.map_err(|e| heed_error(WHAT, e))?;
                heads.insert(key.to_vec(), version);
            }
            heads.extend(pending);
            return heads
                .into_iter()
                .take(limit)
                .map(|(key, version)| Ok((codec::parse_stream_key(&key)?, version)))
                .collect();
        }
    }
}
