//! Partitions: how a projection's events are divided among runners that each keep their own
//! checkpoint, and how those checkpoints are named.
//!
//! An event goes to partition [`partition_of`]`(key, n)`, where the key is its stream (`type/id`)
//! unless the projection says otherwise ([`Partitioning::By`], or
//! [`ProjectionOptions::partition_by`](super::ProjectionOptions::partition_by)). Partition `i`
//! of `n` keeps its checkpoint under [`partition_checkpoint`]`(name, i, n)` (`name#i/n`), and the
//! number of partitions the checkpoints were written with is kept under
//! [`partitions_marker`]`(name)` (`name#partitions`, whose position is `n`), so that a start with
//! another `n` is refused until a rebuild. One partition is the projection as it always was:
//! its checkpoint is `name`.

use std::sync::Arc;

use crate::store::{CheckpointStore, RecordedEvent};

use super::error::ProjectionError;

/// A function that gives an event's partition key.
pub type PartitionKeyFn = fn(&RecordedEvent) -> String;

/// The most partitions a projection may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// How a projection's state divides among partitions, declared by the projection
/// ([`Projection::PARTITIONING`](super::Projection::PARTITIONING); `#[projection(partition_by
/// = ...)]` sets it).
///
/// ```
/// use es_core::projection::{Partitioning, partition_key};
/// use es_core::store::StreamId;
///
/// // The default key is the stream, `type/id`.
/// assert!(Partitioning::ByStream.key_fn().is_none());
/// # let _ = partition_key;
/// # let _ = StreamId::new("account", "a-1");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub enum Partitioning {
    /// The state is one value (a total over every event, a list of everything): it cannot be
    /// divided, so the projection runs in one partition only and a start with more is refused.
    #[default]
    Single,
    /// The state is kept per stream: each partition folds the streams routed to it into its
    /// own state.
    ByStream,
    /// The state is kept per key, the key of an event being what the function returns: each
    /// partition folds the keys routed to it into its own state.
    By(fn(&RecordedEvent) -> String),
}

impl Partitioning {
    /// The key function, when one is given (`None`: the stream, or not partitionable).
    pub fn key_fn(&self) -> Option<PartitionKeyFn> {
        match self {
            Partitioning::By(f) => Some(*f),
            Partitioning::Single | Partitioning::ByStream => None,
        }
    }
}

/// The partition key of `event` under `key_fn` (`None`: its stream, `type/id`).
pub fn partition_key(event: &RecordedEvent, key_fn: Option<PartitionKeyFn>) -> String {
    match key_fn {
        Some(f) => f(event),
        None => event.stream.to_string(),
    }
}

/// The partition (`0..partitions`) that `key` belongs to: FNV-1a (64 bits) of the key's UTF-8
/// bytes, mixed with MurmurHash3's 64-bit finalizer, modulo `partitions`. It is written out
/// here and never changes between releases or platforms, since checkpoints depend on it.
/// `partitions` 0 is taken as 1.
///
/// ```
/// use es_core::projection::partition_of;
///
/// assert_eq!(partition_of("account/a-1", 1), 0);
/// assert!(partition_of("account/a-1", 4) < 4);
/// assert_eq!(partition_of("account/a-1", 4), partition_of("account/a-1", 4));
/// ```
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let n = u64::from(partitions.max(1));
    (mix(fnv(FNV_OFFSET, key.as_bytes())) % n) as u32
}

/// The partition of `event` under `key_fn` (as [`partition_of`] of [`partition_key`]), without
/// building the key when it is the stream.
pub(super) fn partition_of_event(
    event: &RecordedEvent,
    key_fn: Option<PartitionKeyFn>,
    partitions: u32,
) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    let hash = match key_fn {
        Some(f) => fnv(FNV_OFFSET, f(event).as_bytes()),
        None => {
            let stream = &event.stream;
            let hash = fnv(FNV_OFFSET, stream.aggregate_type.as_bytes());
            let hash = fnv(hash, b"/");
            fnv(hash, stream.aggregate_id.as_bytes())
        }
    };
    (mix(hash) % u64::from(partitions)) as u32
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// MurmurHash3's `fmix64`: spreads FNV's weak low bits over the whole word.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The checkpoint name of partition `index` of `partitions` of projection `name`:
/// `name#index/partitions`; `name` itself when there is one partition.
///
/// ```
/// use es_core::projection::partition_checkpoint;
///
/// assert_eq!(partition_checkpoint("balances", 2, 4), "balances#2/4");
/// assert_eq!(partition_checkpoint("balances", 0, 1), "balances");
/// ```
pub fn partition_checkpoint(name: &str, index: u32, partitions: u32) -> String {
    if partitions <= 1 {
        return name.to_owned();
    }
    format!("{name}#{index}/{partitions}")
}

/// The name of the checkpoint that records how many partitions the checkpoints of projection
/// `name` were written with (its position): `name#partitions`.
pub fn partitions_marker(name: &str) -> String {
    format!("{name}#partitions")
}

/// What a checkpoint name says about partitions, for tools that list checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointName<'a> {
    /// A projection's (or process manager's) own checkpoint, unpartitioned.
    Plain(&'a str),
    /// Partition `index` of `partitions` of the projection `name`.
    Partition {
        /// The projection.
        name: &'a str,
        /// The partition, from 0.
        index: u32,
        /// How many partitions.
        partitions: u32,
    },
    /// The record of how many partitions the projection `name`'s checkpoints have.
    Marker(&'a str),
}

impl<'a> CheckpointName<'a> {
    /// Reads a checkpoint name.
    ///
    /// ```
    /// use es_core::projection::CheckpointName;
    ///
    /// assert_eq!(
    ///     CheckpointName::parse("balances#1/4"),
    ///     CheckpointName::Partition { name: "balances", index: 1, partitions: 4 }
    /// );
    /// assert_eq!(CheckpointName::parse("balances"), CheckpointName::Plain("balances"));
    /// assert_eq!(CheckpointName::parse("balances#partitions"), CheckpointName::Marker("balances"));
    /// ```
    pub fn parse(checkpoint: &'a str) -> Self {
        let Some((name, rest)) = checkpoint.rsplit_once('#') else {
            return CheckpointName::Plain(checkpoint);
        };
        if rest == "partitions" {
            return CheckpointName::Marker(name);
        }
        let parsed = rest
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
        match parsed {
            Some((index, partitions)) if index < partitions && partitions > 1 => {
                CheckpointName::Partition {
                    name,
                    index,
                    partitions,
                }
            }
            _ => CheckpointName::Plain(checkpoint),
        }
    }

    /// The projection the checkpoint belongs to.
    pub fn projection(&self) -> &'a str {
        match self {
            CheckpointName::Plain(name)
            | CheckpointName::Marker(name)
            | CheckpointName::Partition { name, .. } => name,
        }
    }
}

/// How many partitions the checkpoints of `name` in `store` were written with: the marker's,
/// else 1 (an unpartitioned checkpoint, or none).
///
/// # Errors
///
/// A store error.
pub async fn stored_partitions(
    store: &dyn CheckpointStore,
    name: &str,
) -> Result<Option<u32>, ProjectionError> {
    Ok(store
        .load(&partitions_marker(name))
        .await?
        .map(|marker| u32::try_from(marker.position).unwrap_or(u32::MAX)))
}

/// Checks that projection `name` may start with `partitions` partitions on `store`: refused
/// when its checkpoints were written with another number (change it with a rebuild). The
/// first partitioned start records its number. `rebuilds`: whether a rebuild can change the
/// number (a projection's can, a process manager's cannot).
pub(crate) async fn check_layout(
    store: &Arc<dyn CheckpointStore>,
    name: &str,
    partitions: u32,
    rebuilds: bool,
) -> Result<(), ProjectionError> {
    let stored = match stored_partitions(store.as_ref(), name).await? {
        Some(n) => n,
        None if partitions <= 1 => return Ok(()),
        None => {
            if store.load(name).await?.is_some() {
                return Err(changed(name, 1, partitions, rebuilds));
            }
            store
                .save(&partitions_marker(name), u64::from(partitions), None)
                .await?;
            return Ok(());
        }
    };
    if stored == partitions {
        Ok(())
    } else {
        Err(changed(name, stored, partitions, rebuilds))
    }
}

/// The error of a start with `wanted` partitions where the checkpoints have `stored`.
fn changed(name: &str, stored: u32, wanted: u32, rebuilds: bool) -> ProjectionError {
    let was = if stored <= 1 {
        format!("its checkpoint `{name}` was written unpartitioned")
    } else {
        format!(
            "its checkpoints (`{}` ...) were written with {stored} partitions",
            partition_checkpoint(name, 0, stored)
        )
    };
    let change = if !rebuilds {
        "a process manager's instances live in its partitions' checkpoints, so the number \
         cannot change under them"
            .to_owned()
    } else {
        format!(
            "or change the number with a rebuild \
             (`kernel.projections().rebuild::<P>(options.partitions({wanted}))`)"
        )
    };
    ProjectionError::Partitions {
        name: name.to_owned(),
        reason: format!(
            "started with {wanted} partition(s), but {was}: start it with \
             `ProjectionOptions::partitions({stored})`; {change}"
        ),
    }
}

/// Checks that `P`'s state may be divided into `partitions` and returns the key function to
/// route with.
pub(super) fn key_for(
    name: &str,
    declared: Partitioning,
    partitions: u32,
    given: Option<PartitionKeyFn>,
) -> Result<Option<PartitionKeyFn>, ProjectionError> {
    if partitions > MAX_PARTITIONS {
        return Err(ProjectionError::Partitions {
            name: name.to_owned(),
            reason: format!("{partitions} partitions asked for; at most {MAX_PARTITIONS}"),
        });
    }
    if partitions > 1 && matches!(declared, Partitioning::Single) {
        return Err(ProjectionError::Partitions {
            name: name.to_owned(),
            reason: format!(
                "it cannot be partitioned ({partitions} partitions asked for): its state is one \
                 value, and each partition would hold only part of it. When its state is kept \
                 per key (each partition keeping the keys routed to it), say so with \
                 `#[projection(partition_by = \"stream\")]` or `partition_by = key_fn` \
                 (`Projection::PARTITIONING`); else run it in one partition"
            ),
        });
    }
    Ok(given.or(declared.key_fn()))
}

/// Which events one partition runner handles.
#[derive(Clone, Copy)]
pub(super) struct Route {
    /// Its partition, from 0.
    pub(super) index: u32,
    /// How many partitions.
    pub(super) count: u32,
    /// The key function (`None`: the stream).
    pub(super) key: Option<PartitionKeyFn>,
}

impl Route {
    /// Whether `event` belongs to this partition.
    pub(super) fn takes(&self, event: &RecordedEvent) -> bool {
        self.count <= 1 || partition_of_event(event, self.key, self.count) == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed() {
        // These values are a promise: checkpoints depend on them.
        let spread: Vec<u32> = ["a", "b", "c", "account/a-1", ""]
            .iter()
            .map(|k| partition_of(k, 1000))
            .collect();
        assert_eq!(spread, FIXED);
    }

    const FIXED: [u32; 5] = [315, 704, 550, 727, 342];

    #[test]
    fn names_round_trip() {
        for (i, n) in [(0, 2), (3, 4), (1023, 1024)] {
            let name = partition_checkpoint("p#x", i, n);
            assert_eq!(
                CheckpointName::parse(&name),
                CheckpointName::Partition {
                    name: "p#x",
                    index: i,
                    partitions: n
                }
            );
        }
        assert_eq!(
            CheckpointName::parse("a#5/4"),
            CheckpointName::Plain("a#5/4")
        );
        assert_eq!(CheckpointName::parse("a#x"), CheckpointName::Plain("a#x"));
    }
}
