//! Checkpoint files: `checkpoints/<name>.json`, one per projection, replaced atomically
//! (see [`replace_file`]).

use std::fs;
use std::io;
use std::path::PathBuf;

use es_core::store::{Checkpoint, StoreError};

use super::format::{CheckpointDoc, CheckpointHeader, read_body, write_record};
use super::layout::{CHECKPOINTS_DIR, checkpoint_file_name, replace_file};
use super::state::State;

impl State {
    /// The directory and file name of projection `name`'s checkpoint.
    fn checkpoint_path(&self, name: &str) -> (PathBuf, String) {
        (self.dir.join(CHECKPOINTS_DIR), checkpoint_file_name(name))
    }

    /// Writes the checkpoint of projection `name`.
    pub(super) fn save_checkpoint(
        &self,
        name: &str,
        position: u64,
        state: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let (dir, file) = self.checkpoint_path(name);
        let mut text = Vec::with_capacity(state.map_or(0, <[u8]>::len) + 128);
        write_record(
            &mut text,
            &CheckpointHeader { name, position },
            "state",
            state,
        )
        .map_err(|e| StoreError::InvalidInput(format!("checkpoint cannot be encoded: {e}")))?;
        text.push(b'\n');
        replace_file(&dir, &file, &text)
            .map_err(|e| StoreError::io(format!("writing {}", dir.join(&file).display()), e))
    }

    /// The checkpoint of projection `name`, if saved.
    pub(super) fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let (dir, file) = self.checkpoint_path(name);
        let path = dir.join(file);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("{}: {what}", path.display()));
        let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let doc: CheckpointDoc<'_> = serde_json::from_slice(text)
            .map_err(|e| corrupt(&format!("not a valid checkpoint: {e}")))?;
        if doc.name != name {
            tracing::warn!(file = %path.display(), name, "checkpoint file belongs to another projection; ignored");
            return Ok(None);
        }
        let header = CheckpointHeader {
            name: &doc.name,
            position: doc.position,
        };
        let state = read_body(
            text,
            &header,
            "state",
            doc.state.is_some(),
            doc.state_base64.as_deref(),
        )
        .map_err(|e| corrupt(&e))?;
        Ok(Some(Checkpoint {
            position: doc.position,
            state,
        }))
    }
}
