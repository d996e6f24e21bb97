//! A partitioned projection survives SIGKILL on LMDB: a child process appends from three
//! writers while a kernel runs `PerStream` in four partitions (each handling 200 µs per event,
//! so a kill lands mid-batch); the parent SIGKILLs it, reopens the store, catches every
//! partition up from its checkpoint, and checks from the state (saved in the same write as
//! each partition's position) that every event was handled exactly once, in order, none
//! skipped.
//!
//! The child is this test binary re-invoked with `ES_LMDB_PARTITIONS_CHILD=<dir>`.
#![cfg(feature = "lmdb")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash_common;
mod partitions_common;

use std::time::Duration;

use es_core::prelude::*;
use es_core::projection::{partition_checkpoint, stored_partitions};
use es_stores::LmdbStore;
use partitions_common::{PARTITIONS, PerStream, append_forever, assert_exactly_once, options};

const CHILD_ENV: &str = "ES_LMDB_PARTITIONS_CHILD";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The child: runs the projection and appends forever.
#[test]
fn lmdb_partitions_child() -> TestResult {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = LmdbStore::open(&dir)?;
        let kernel = Kernel::builder().store(store.clone()).build()?;
        kernel.projections().start::<PerStream>(options()).await?;
        append_forever(store).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

#[test]
fn sigkill_mid_batch_leaves_every_partition_exactly_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let dir_str = dir.path().to_str().ok_or("non-UTF-8 temp dir")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for kill_after in [300, 700] {
        let acks = crash_common::run_and_kill(
            "lmdb_partitions_child",
            &[(CHILD_ENV, dir_str)],
            kill_after,
            |_| Ok(()),
        )?;
        assert!(acks.len() >= kill_after);
        runtime.block_on(async {
            let store = LmdbStore::open(dir.path())?;
            // The child saved partition checkpoints before it died.
            assert_eq!(
                stored_partitions(&store, "per_stream").await?,
                Some(PARTITIONS)
            );
            let mut saved = 0;
            for index in 0..PARTITIONS {
                let name = partition_checkpoint("per_stream", index, PARTITIONS);
                if CheckpointStore::load(&store, &name).await?.is_some() {
                    saved += 1;
                }
            }
            assert!(
                saved > 0,
                "no partition checkpoint was saved before the kill"
            );
            let kernel = Kernel::builder().store(store.clone()).build()?;
            let handle = kernel.projections().start::<PerStream>(options()).await?;
            let head = store.head_position().await?;
            tokio::time::timeout(Duration::from_secs(60), handle.wait_for(head)).await??;
            assert_exactly_once(&store, &handle.partition_states().await).await;
            kernel.shutdown().await;
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
    }
    Ok(())
}
