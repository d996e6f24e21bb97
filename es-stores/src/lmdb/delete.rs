//! Removing events (`EventStore::truncate_stream`): in the writer's transaction, the stream's
//! index entries and log records below a sequence are deleted and the removal is recorded in
//! the `truncations` database, all in one commit (so a crash leaves all of it or none).
//!
//! The `truncations` database (stream key → `before` (big-endian `u64`) ++ the time in
//! milliseconds since the epoch (big-endian `i64`)) is created on open when a store written
//! before it lacks it; an absent entry means nothing was removed.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use es_core::store::lifecycle::Truncation;
use es_core::store::{StoreError, StreamId};
use heed::RwTxn;

use super::codec;
use super::commit::TxnWriter;
use super::lifecycle::Shared;
use super::open::heed_error;

impl TxnWriter {
    /// Removes the events of the stream keyed `key` below sequence `before`. `Ok(Err(..))` is
    /// a refusal (nothing written); `Err` is an LMDB error while writing.
    pub(super) fn apply_truncate(
        &mut self,
        txn: &mut RwTxn<'_>,
        stream: &StreamId,
        key: &[u8],
        before: u64,
    ) -> Result<Result<u64, StoreError>, heed::Error> {
        // The attempt wrote the pending index to the databases first (see `attempt`).
        let version = match self.heads.get(key) {
            Some(version) => version,
            None => self.dbs.heads.get(txn, key)?.unwrap_or(0),
        };
        if before > version {
            return Ok(Err(StoreError::InvalidInput(format!(
                "cannot remove the events of {stream} before sequence {before}: its version is \
                 {version}, and its last event is always kept"
            ))));
        }
        if before <= 1 {
            return Ok(Ok(0));
        }
        let start = codec::suffixed(key, 1);
        let end = codec::suffixed(key, before);
        let range = (
            Bound::Included(start.as_slice()),
            Bound::Excluded(end.as_slice()),
        );
        let doomed: Vec<(Vec<u8>, u64)> = self
            .dbs
            .index
            .range(txn, &range)?
            .map(|entry| entry.map(|(k, position)| (k.to_vec(), position)))
            .collect::<Result<_, _>>()?;
        for (index_key, position) in &doomed {
            self.dbs.events.delete(txn, position)?;
            self.dbs.index.delete(txn, index_key)?;
        }
        if !doomed.is_empty() {
            let recorded = match self.dbs.truncations.get(txn, key)? {
                Some(value) => {
                    codec::be_u64(&value[..value.len().min(8)], "a truncation").unwrap_or(0)
                }
                None => 0,
            };
            let mut value = before.max(recorded).to_be_bytes().to_vec();
            value.extend_from_slice(&Utc::now().timestamp_millis().to_be_bytes());
            self.dbs.truncations.put(txn, key, &value)?;
        }
        Ok(Ok(doomed.len() as u64))
    }
}

impl Shared {
    /// Every recorded removal.
    pub(super) fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        const WHAT: &str = "list the truncations";
        let _gate = self.resize_gate.read();
        let txn = self.env.read_txn().map_err(|e| heed_error(WHAT, e))?;
        let mut out = Vec::new();
        for entry in self
            .dbs
            .truncations
            .iter(&txn)
            .map_err(|e| heed_error(WHAT, e))?
        {
            let (key, value) = entry.map_err(|e| heed_error(WHAT, e))?;
            let stream = codec::parse_stream_key(key)?;
            let corrupt = || StoreError::Corrupt(format!("lmdb: truncation record of {stream}"));
            let (before, millis) = value.split_at_checked(8).ok_or_else(corrupt)?;
            let before = codec::be_u64(before, "a truncation")?;
            let millis = <[u8; 8]>::try_from(millis).map_err(|_| corrupt())?;
            let at =
                DateTime::from_timestamp_millis(i64::from_be_bytes(millis)).ok_or_else(corrupt)?;
            out.push(Truncation { stream, before, at });
        }
        Ok(out)
    }
}
