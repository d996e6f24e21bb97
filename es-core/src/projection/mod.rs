//! Projections: read models folded from the global log in position order.
//!
//! A projection is a `Default` state with one `#[on]` method per event type it handles; the
//! `#[projection]` macro writes its [`Projection`] impl. [`run_once`] folds the whole log once;
//! [`run_once_with`] catches up from a checkpoint and saves it; `kernel.projections().start::<P>(..)`
//! (or [`spawn`], without a kernel) keeps one up to date, with durable checkpoints in a
//! checkpoint store (the kernel's, or one in [`ProjectionOptions`]). A runner without one is
//! refused unless its options say [`ProjectionOptions::in_memory_checkpoints`].
//!
//! Each concept has its file, and they depend on each other one way only: `read_model` (the
//! [`Projection`] trait, and feeding it one event) and `error` at the bottom; `options` (how a
//! runner runs and what it reports) and `metrics`; `shared` (what a runner shares with its
//! handles) under `handle`, `runner` (its part of following the log, the rest being
//! `crate::follow`'s) and `rebuild`; `launch` (starting a runner) and `once` (folding the log
//! once) above them, and `projections`, a kernel's runners by name, on top. The dead-letter
//! queue of [`ErrorPolicy::Park`] is `dead_letter` (its records and their checkpoint format,
//! at the bottom) and `parking` (parking, retrying and skipping on a running runner, used by
//! `runner` and by `any_runner`, a runner seen without its type, which `projections` keeps).

mod any_runner;
mod dead_letter;
mod error;
mod group;
mod handle;
mod launch;
pub(crate) mod metrics;
mod once;
mod options;
mod parking;
mod partition;
mod projections;
mod read_model;
mod rebuild;
mod rebuild_parts;
mod runner;
mod shared;
mod spread;

pub use crate::follow::ProjectionPhase;
pub use dead_letter::{
    DeadLetter, dead_letters_in, request_retry_in, skip_in, translate_dead_letters,
};
pub(crate) use dead_letter::{Parked, unwrap_state, wrap_state};
pub use error::ProjectionError;
pub use handle::ProjectionHandle;
pub use launch::spawn;
pub use once::{RUN_ONCE_PAGE, run_once, run_once_with};
pub(crate) use options::OnFailure;
pub use options::{
    ErrorPolicy, OnError, ProjectionOptions, ProjectionStatus, RebuildProgress, SkippedEvent,
};
pub(crate) use partition::check_layout as check_partitions;
pub use partition::{
    CheckpointName, MAX_PARTITIONS, PartitionKeyFn, Partitioning, partition_checkpoint,
    partition_key, partition_of, partitions_marker, stored_partitions,
};
pub use projections::Projections;
#[cfg(feature = "testkit")]
pub(crate) use read_model::apply_event;
pub use read_model::{HandlerOutcome, OnEvents, Projection};
pub(crate) use rebuild_parts::stored_dead_letters;
pub(crate) use spread::{SpreadHandle, spawn_untracked as spread_partitions};
