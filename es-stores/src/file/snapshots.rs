//! Snapshot files: `snapshots/<type>.<id>/<version>.json`, one per saved snapshot, each
//! written atomically (see [`replace_file`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use es_core::store::{Snapshot, StoreError, StreamId};

use super::format::{
    SnapshotDoc, SnapshotHeader, StreamField, format_timestamp, parse_timestamp, read_body,
    write_record,
};
use super::layout::{
    SNAPSHOTS_DIR, ensure_dir, parse_snapshot_file_name, replace_file, snapshot_file_name,
    stream_dir_name, sync_dir,
};
use super::state::State;

impl State {
    /// The directory of `stream`'s snapshot files.
    fn snapshot_dir(&self, stream: &StreamId) -> PathBuf {
        self.dir.join(SNAPSHOTS_DIR).join(stream_dir_name(stream))
    }

    /// The versions of the snapshot files of `stream`, ascending.
    fn snapshot_versions(&self, dir: &Path) -> Result<Vec<u64>, StoreError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(format!("listing {}", dir.display()), e)),
        };
        let mut versions = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
            if let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(parse_snapshot_file_name)
            {
                versions.push(version);
            }
        }
        versions.sort_unstable();
        Ok(versions)
    }

    /// Writes `snapshot` to its file (replacing a snapshot of the same version).
    pub(super) fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let dir = self.snapshot_dir(&snapshot.stream);
        ensure_dir(&dir).map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let timestamp = format_timestamp(&snapshot.timestamp);
        let header = SnapshotHeader {
            stream: StreamField::of(&snapshot.stream),
            version: snapshot.version,
            timestamp: &timestamp,
        };
        let mut text = Vec::with_capacity(snapshot.state.len() + 256);
        write_record(&mut text, &header, "state", Some(&snapshot.state))
            .map_err(|e| StoreError::InvalidInput(format!("snapshot cannot be encoded: {e}")))?;
        text.push(b'\n');
        let name = snapshot_file_name(snapshot.version);
        replace_file(&dir, &name, &text)
            .map_err(|e| StoreError::io(format!("writing {}", dir.join(&name).display()), e))
    }

    /// The snapshot of `stream` with the highest version, if any.
    pub(super) fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let dir = self.snapshot_dir(stream);
        for version in self.snapshot_versions(&dir)?.into_iter().rev() {
            let path = dir.join(snapshot_file_name(version));
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                // Pruned since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(format!("reading {}", path.display()), e)),
            };
            let corrupt = |what: &str| StoreError::Corrupt(format!("{}: {what}", path.display()));
            let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let doc: SnapshotDoc<'_> = serde_json::from_slice(text)
                .map_err(|e| corrupt(&format!("not a valid snapshot: {e}")))?;
            if !doc.stream.is(stream) {
                tracing::warn!(file = %path.display(), "snapshot file belongs to another stream; ignored");
                continue;
            }
            let state = read_body(
                text,
                &doc.header(),
                "state",
                doc.state.is_some(),
                doc.state_base64.as_deref(),
            )
            .map_err(|e| corrupt(&e))?
            .ok_or_else(|| corrupt("no `state` or `state_base64`"))?;
            let timestamp = parse_timestamp(&doc.timestamp).map_err(|e| corrupt(&e))?;
            return Ok(Some(Snapshot {
                stream: stream.clone(),
                version: doc.version,
                state,
                timestamp,
            }));
        }
        Ok(None)
    }

    /// Deletes all but the `keep_last` newest snapshot files of `stream`.
    pub(super) fn prune_snapshots(
        &self,
        stream: &StreamId,
        keep_last: usize,
    ) -> Result<(), StoreError> {
        let dir = self.snapshot_dir(stream);
        let versions = self.snapshot_versions(&dir)?;
        let remove = versions.len().saturating_sub(keep_last);
        for version in &versions[..remove] {
            let path = dir.join(snapshot_file_name(*version));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format!("removing {}", path.display()), e)),
            }
        }
        if remove > 0 {
            sync_dir(&dir).map_err(|e| StoreError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(())
    }
}
