//! Snapshot writes: off the reply path, in a task of their own that shutdown waits for.

use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::store::{EventStore, Snapshot, SnapshotStore, StreamId};

use super::context::Context;
use crate::tracker::TaskToken;

/// Writes a snapshot of `state` (at `version`) when a commit from `before` to `version`
/// crossed a multiple of `snapshot_every`.
pub(crate) fn maybe_snapshot<A: Aggregate>(
    ctx: &Context,
    stream: &StreamId,
    state: &A,
    before: u64,
    version: u64,
) {
    let every = ctx.config.snapshot_every;
    if every == 0 || before / every == version / every {
        return;
    }
    let Some(store) = &ctx.snapshot_store else {
        return;
    };
    let bytes = match encode_state(A::SNAPSHOT_VERSION, state) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(%stream, error = %e, "cannot serialize the state for a snapshot");
            return;
        }
    };
    let write = SnapshotWrite {
        store: store.clone(),
        truncate: A::KEEP_AFTER_SNAPSHOT.then(|| ctx.event_store.clone()),
        keep: ctx.config.snapshots_kept.max(1),
        _token: ctx.task_token(),
    };
    let snapshot = Snapshot {
        stream: stream.clone(),
        version,
        state: bytes,
        timestamp: ctx.clock.now(),
    };
    ctx.runtime.spawn(write.run(snapshot));
}

/// One snapshot write: the store handle it needs, and the token shutdown waits for.
struct SnapshotWrite {
    store: Arc<dyn SnapshotStore>,
    keep: usize,
    /// The log to truncate after the snapshot (`#[aggregate(keep = after_snapshot)]`).
    truncate: Option<Arc<dyn EventStore>>,
    /// Declared last, so it is released after the store handle (fields drop in order).
    _token: TaskToken,
}

impl SnapshotWrite {
    /// Saves `snapshot`, then prunes; `self` is dropped as a whole when the task ends.
    async fn run(self, snapshot: Snapshot) {
        let stream = snapshot.stream.clone();
        let version = snapshot.version;
        match self.store.save(snapshot).await {
            Ok(()) => {
                tracing::debug!(%stream, version, "snapshot written");
                if let Err(e) = self.store.prune(&stream, self.keep).await {
                    tracing::warn!(%stream, error = %e, "cannot prune old snapshots");
                }
                // The snapshot covers every event up to `version`; the event at `version`
                // itself is kept (a stream always keeps its last event).
                if let Some(log) = &self.truncate
                    && let Err(e) = log.truncate_stream(&stream, version).await
                {
                    tracing::warn!(%stream, version, error = %e, "cannot truncate the stream after its snapshot");
                }
            }
            Err(e) => tracing::warn!(%stream, version, error = %e, "snapshot write failed"),
        }
    }
}

/// The first bytes of a snapshot state written at a snapshot version other than 1: a NUL (no
/// JSON document starts with one), `esv`, then the version as 4 little-endian bytes, then the
/// JSON state. A version-1 state is the bare JSON, as every snapshot was before versions
/// existed, so snapshots written by older code read as version 1 and stores keep their format.
const VERSIONED: &[u8; 4] = b"\0esv";

/// Serializes `state` for a snapshot of snapshot version `version`.
pub(crate) fn encode_state<A: Aggregate>(
    version: u32,
    state: &A,
) -> Result<Vec<u8>, serde_json::Error> {
    // `#[pii]` fields of the state go out open; the kernel's snapshot store seals them.
    let json = crate::erasure::encode_open(state, A::TYPE, state.pii_fields())?;
    if version == 1 {
        return Ok(json);
    }
    let mut bytes = Vec::with_capacity(json.len() + 8);
    bytes.extend_from_slice(VERSIONED);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

/// The snapshot version a stored state was written at, and its JSON; `None` for a state that
/// starts like a versioned one but is cut short.
pub(crate) fn split_state(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let Some(rest) = bytes.strip_prefix(VERSIONED.as_slice()) else {
        return Some((1, bytes));
    };
    let (version, json) = rest.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*version), json))
}

#[cfg(test)]
mod tests {
    use super::split_state;

    #[test]
    fn bare_json_is_version_one_and_a_header_gives_its_version() {
        assert_eq!(split_state(b"{\"a\":1}"), Some((1, &b"{\"a\":1}"[..])));
        let mut bytes = b"\0esv".to_vec();
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(b"{}");
        assert_eq!(split_state(&bytes), Some((7, &b"{}"[..])));
        assert_eq!(split_state(b"\0esv\x01"), None);
    }
}
