//! Rebuilding a partitioned projection, or changing its number of partitions: every partition
//! is folded afresh from position 1, and its checkpoints are written with the new number.

use std::sync::Arc;

use crate::store::{CheckpointStore, EventStore};

use super::dead_letter::{DeadLetter, dead_letters_in};
use super::error::ProjectionError;
use super::handle::ProjectionHandle;
use super::options::ProjectionOptions;
use super::partition::{
    self, partition_checkpoint, partition_of_event, partitions_marker, stored_partitions,
};
use super::read_model::{Projection, apply_event};

/// Rebuilds `P` into the partitions `options` ask for when it has or gets more than one
/// (`None`: an unpartitioned rebuild, left to [`super::rebuild`]). Each partition's fresh
/// state is folded from position 1 and saved as its checkpoint (`name#i/n`), then the number
/// of partitions is recorded; partitions whose checkpoint was saved before a crash are
/// complete on their own, so a rebuild cut short is simply run again. Refused while a runner
/// of `P` runs on this kernel.
pub(super) async fn rebuild_if_partitioned<P: Projection>(
    store: &dyn EventStore,
    running: Option<&ProjectionHandle<P>>,
    checkpoints: Option<&Arc<dyn CheckpointStore>>,
    options: &ProjectionOptions,
) -> Result<Option<u64>, ProjectionError> {
    let count = options.partitions.max(1);
    let stored = match checkpoints {
        Some(store) => stored_partitions(store.as_ref(), P::NAME).await?,
        None => None,
    };
    let running_parts = running.map_or(1, ProjectionHandle::partitions);
    if count == 1 && stored.is_none_or(|n| n == 1) && running_parts == 1 {
        return Ok(None);
    }
    if running.is_some() {
        return Err(ProjectionError::Partitions {
            name: P::NAME.to_owned(),
            reason: "a partitioned rebuild (or one that changes the number of partitions) \
                     runs while the projection is stopped: stop it on this kernel (and on \
                     every other process sharing the store), rebuild, then start it with \
                     the new number"
                .to_owned(),
        });
    }
    let key = partition::key_for(P::NAME, P::PARTITIONING, count, options.partition_by)?;
    let mut states: Vec<P> = (0..count).map(|_| P::default()).collect();
    let filter = P::event_filter();
    let batch = options.batch_size.max(1);
    let mut last = 0;
    loop {
        let page = store.read_all_matching(last + 1, batch, filter).await?;
        if page.scanned == 0 {
            break;
        }
        for event in &page.events {
            let index = partition_of_event(event, key, count) as usize;
            if let Some(state) = states.get_mut(index) {
                apply_event(state, event)?;
            }
        }
        last = page.scanned_to;
        tokio::task::yield_now().await;
    }
    let Some(checkpoints) = checkpoints else {
        return Ok(Some(last));
    };
    for (index, state) in states.iter().enumerate() {
        let bytes = if options.persist_state {
            state.encode_state().transpose()?
        } else {
            None
        };
        let name = partition_checkpoint(P::NAME, index as u32, count);
        checkpoints.save(&name, last, bytes).await?;
    }
    checkpoints
        .save(&partitions_marker(P::NAME), u64::from(count), None)
        .await?;
    Ok(Some(last))
}

/// The dead letters saved in the checkpoints of projection `name` (every partition's, by
/// position, when it is partitioned).
pub(crate) async fn stored_dead_letters(
    store: &dyn CheckpointStore,
    name: &str,
) -> Result<Vec<DeadLetter>, ProjectionError> {
    let count = stored_partitions(store, name).await?.unwrap_or(1);
    let mut letters = Vec::new();
    for index in 0..count {
        if let Some(checkpoint) = store
            .load(&partition_checkpoint(name, index, count))
            .await?
        {
            letters.extend(dead_letters_in(&checkpoint)?);
        }
    }
    if count > 1 {
        letters.sort_by_key(|l| l.position);
    }
    Ok(letters)
}
