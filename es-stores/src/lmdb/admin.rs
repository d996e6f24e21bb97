//! What an operator tool reads beyond the store traits: the names of the saved checkpoints.

use es_core::store::StoreError;

use super::LmdbStore;
use super::open::heed_error;

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
}
