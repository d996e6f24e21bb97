//! What an operator tool reads beyond the store traits: the names of the saved checkpoints
//! and the stream heads.

use std::fs;
use std::io;

use es_core::store::{StoreError, StreamId};

use super::FileStore;
use super::format::CheckpointDoc;
use super::layout::CHECKPOINTS_DIR;

impl FileStore {
    /// Up to `limit` streams and their versions, in stream id order, after `after` (from the
    /// first when `None`): the stream heads, from the in-memory index (no file is read).
    pub fn stream_heads(&self, after: Option<&StreamId>, limit: usize) -> Vec<(StreamId, u64)> {
        let index = self.shared.state.index.read();
        let mut heads: Vec<(&StreamId, u64)> = index
            .heads()
            .filter(|(s, _)| after.is_none_or(|a| *s > a))
            .collect();
        let limit = limit.min(heads.len());
        if limit < heads.len() {
            heads.select_nth_unstable_by(limit, |a, b| a.0.cmp(b.0));
            heads.truncate(limit);
        }
        heads.sort_unstable_by(|a, b| a.0.cmp(b.0));
        heads.into_iter().map(|(s, v)| (s.clone(), v)).collect()
    }

    /// The names of the projections that have a saved checkpoint, in no particular order:
    /// each checkpoint file says its projection's name. Blocks the calling thread on reading
    /// the checkpoint files.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a checkpoint file that is not one, and I/O errors.
    pub(crate) fn checkpoint_names(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.dir().join(CHECKPOINTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(format!("listing {}", dir.display()), e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with('.') || !file_name.ends_with(".json") {
                continue; // temporary files of a replacement in progress
            }
            let text = fs::read(&path)
                .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
            let text = text.strip_suffix(b"\n").unwrap_or(&text);
            let doc: CheckpointDoc<'_> = serde_json::from_slice(text).map_err(|e| {
                StoreError::Corrupt(format!("{}: not a checkpoint file: {e}", path.display()))
            })?;
            names.push(doc.name.into_owned());
        }
        Ok(names)
    }
}
