//! Snapshot writes: off the reply path, in a task of their own that shutdown waits for.

use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::store::{Snapshot, SnapshotStore, StreamId};

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
    let bytes = match serde_json::to_vec(state) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(%stream, error = %e, "cannot serialize the state for a snapshot");
            return;
        }
    };
    let write = SnapshotWrite {
        store: store.clone(),
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
            }
            Err(e) => tracing::warn!(%stream, version, error = %e, "snapshot write failed"),
        }
    }
}
