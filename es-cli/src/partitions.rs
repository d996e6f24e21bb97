//! Partitioned projections in the CLI: a projection run in `n` partitions keeps one checkpoint
//! per partition (`name#i/n`) and records `n` under `name#partitions`. The commands take the
//! projection's name and act on its current partitions; listings show the projection, then
//! each partition, and mark checkpoints left from another number of partitions as stale.

use es_core::projection::{CheckpointName, partition_checkpoint, stored_partitions};
use es_stores::OpenedStore;

use crate::error::{CliError, CliResult};

/// How many partitions the checkpoints of projection `name` have (1: unpartitioned).
pub(crate) async fn count(store: &OpenedStore, name: &str) -> CliResult<u32> {
    let es = store.store();
    stored_partitions(&*es, name)
        .await
        .map(|n| n.unwrap_or(1))
        .map_err(|e| CliError::new(format!("reading the partitions of {name:?}: {e}")))
}

/// The current checkpoint names of projection `name`: `name`, or its partitions'.
pub(crate) async fn checkpoints_of(store: &OpenedStore, name: &str) -> CliResult<Vec<String>> {
    let n = count(store, name).await?;
    Ok((0..n).map(|i| partition_checkpoint(name, i, n)).collect())
}

/// What a listed checkpoint is, given the number of partitions its projection has now.
pub(crate) enum Listed {
    /// A projection's own checkpoint, current.
    Plain,
    /// A current partition.
    Partition,
    /// A checkpoint left from another number of partitions (a rebuild changed it).
    Stale,
    /// The record of the number of partitions: not a checkpoint to show.
    Marker,
}

/// Classifies checkpoint `checkpoint` when its projection has `current` partitions.
pub(crate) fn classify(checkpoint: &str, current: u32) -> Listed {
    match CheckpointName::parse(checkpoint) {
        CheckpointName::Marker(_) => Listed::Marker,
        CheckpointName::Plain(_) if current <= 1 => Listed::Plain,
        CheckpointName::Plain(_) => Listed::Stale,
        CheckpointName::Partition { partitions, .. } if partitions == current => Listed::Partition,
        CheckpointName::Partition { .. } => Listed::Stale,
    }
}
