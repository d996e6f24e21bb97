//! Partitioned projections spread over kernels sharing a PostgreSQL store: each partition is
//! run by one kernel at a time (its own advisory lock), a kernel that joins takes a share, the
//! partitions of one that dies are taken over from their checkpoints, and after a SIGKILL in
//! the middle of concurrent appends every event was handled exactly once per partition (the
//! state, saved in the same write as each partition's position, proves it).
//!
//! Built only with the `postgres` feature; fails without a server at `ES_PG_URL`. The SIGKILL
//! test re-invokes this test binary as its child (`ES_PG_PARTITIONS_CHILD`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod crash_common;
mod partitions_common;
mod postgres_common;

use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::projection::{ProjectionHandle, partition_checkpoint};
use es_stores::PostgresStore;
use partitions_common::{
    PARTITIONS, PerStream, append_forever, assert_exactly_once, options, stream,
};
use postgres_common::{SchemaGuard, pg_url, pool};

const CHILD_ENV: &str = "ES_PG_PARTITIONS_CHILD";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::builder(pool(url, 4).await)
        .schema(schema.to_owned())
        .build()
        .await
        .expect("cannot build the store")
}

/// A kernel on `rt` with its own pool on `schema`, running `PerStream` in partitions.
fn start(
    rt: &tokio::runtime::Runtime,
    url: &str,
    schema: &str,
) -> (Kernel, ProjectionHandle<PerStream>, PostgresStore) {
    rt.block_on(async {
        let store = open(url, schema).await;
        let kernel = Kernel::builder().store(store.clone()).build().unwrap();
        let handle = kernel
            .projections()
            .start::<PerStream>(options())
            .await
            .unwrap();
        (kernel, handle, store)
    })
}

/// How many partitions `handle`'s kernel runs (holds the lease of).
fn held(handle: &ProjectionHandle<PerStream>) -> usize {
    let status = handle.status();
    assert_eq!(status.partitions.len(), PARTITIONS as usize);
    status.partitions.iter().filter(|p| !p.standby).count()
}

/// Polls `check` every 20 ms until it holds; fails naming `what` after `limit`.
fn poll_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {limit:?}");
}

async fn append(store: &PostgresStore, rounds: u64) {
    for round in 0..rounds {
        for i in 0..partitions_common::STREAMS {
            let payload = serde_json::to_vec(&partitions_common::Bumped { n: round }).unwrap();
            store
                .append(
                    &stream(i),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Bumped", payload)],
                )
                .await
                .unwrap();
        }
    }
}

/// Waits (60 s at most) until every partition's checkpoint in `store` is at the head, then
/// checks the saved states.
async fn assert_checkpoints_exactly_once(store: &PostgresStore) {
    let head = store.head_position().await.unwrap();
    let started = Instant::now();
    let states = loop {
        let mut states = Vec::new();
        for index in 0..PARTITIONS {
            let name = partition_checkpoint("per_stream", index, PARTITIONS);
            match CheckpointStore::load(store, &name).await.unwrap() {
                Some(saved) if saved.position >= head => {
                    let state: PerStream = match saved.state {
                        Some(bytes) => serde_json::from_slice(&bytes).unwrap(),
                        None => PerStream::default(),
                    };
                    states.push(state);
                }
                _ => break,
            }
        }
        if states.len() == PARTITIONS as usize {
            break states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the partitions never all reached the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_exactly_once(store, &states).await;
}

/// Three kernels on one schema: the first runs all four partitions; the second joining takes
/// two; the third takes one of them; when the second dies (its runtime dropped, as a dying
/// process's connections close) the others take its partitions over from their checkpoints,
/// and the saved states hold every event exactly once.
#[test]
fn partitions_are_shared_out_and_taken_over() {
    let main = runtime();
    let url = main.block_on(pg_url());
    let guard = SchemaGuard::fresh(&url, "parts");
    let schema = guard.schema.clone();
    let rt_a = runtime();
    let (kernel_a, handle_a, store) = start(&rt_a, &url, &schema);
    poll_until(Duration::from_secs(15), "A runs every partition", || {
        held(&handle_a) == PARTITIONS as usize
    });
    main.block_on(append(&store, 5));

    let rt_b = runtime();
    let (_kernel_b, handle_b, _) = start(&rt_b, &url, &schema);
    poll_until(Duration::from_secs(20), "A and B run two each", || {
        held(&handle_a) == 2 && held(&handle_b) == 2
    });
    main.block_on(append(&store, 3));

    let rt_c = runtime();
    let (kernel_c, handle_c, _) = start(&rt_c, &url, &schema);
    poll_until(Duration::from_secs(20), "A, B and C share the four", || {
        let (a, b, c) = (held(&handle_a), held(&handle_b), held(&handle_c));
        a + b + c == 4 && a >= 1 && b >= 1 && c >= 1
    });
    main.block_on(append(&store, 3));

    // B dies: its leases end with its connections.
    drop(rt_b);
    let took = poll_until(
        Duration::from_secs(20),
        "A and C take B's partitions",
        || held(&handle_a) + held(&handle_c) == 4,
    );
    println!("B's partitions were taken over within {took:?}");
    main.block_on(append(&store, 3));
    main.block_on(assert_checkpoints_exactly_once(&store));

    rt_a.block_on(kernel_a.shutdown());
    rt_c.block_on(kernel_c.shutdown());
}

/// The child: runs the projection on the schema in `ES_PG_PARTITIONS_CHILD` (`url schema`)
/// and appends forever.
#[test]
fn pg_partitions_child() {
    let Ok(env) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (url, schema) = env.split_once(' ').expect("url schema");
    let rt = runtime();
    let (_kernel, _handle, store) = start(&rt, url, schema);
    rt.block_on(append_forever(store)).unwrap();
}

/// A child process runs the projection (alone first, so it holds every partition) while
/// appending from three writers; this process starts a kernel beside it, which takes a share;
/// the child is SIGKILLed mid-batch; this kernel takes every partition over, catches up, and
/// the saved states hold every event exactly once, none skipped.
#[test]
fn sigkill_mid_batch_with_concurrent_appends_loses_and_repeats_nothing() {
    let main = runtime();
    let url = main.block_on(pg_url());
    let guard = SchemaGuard::fresh(&url, "partkill");
    let schema = guard.schema.clone();
    // Create the schema before the child and this kernel race to.
    let store = main.block_on(open(&url, &schema));
    let env = format!("{url} {schema}");
    let rt = runtime();
    let mut survivor = None;
    let acks = crash_common::run_and_kill(
        "pg_partitions_child",
        &[(CHILD_ENV, env.as_str())],
        800,
        |count| {
            if count == 200 {
                survivor = Some(start(&rt, &url, &schema));
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(acks.len() >= 800);
    let (kernel, handle, _) = survivor.expect("the second kernel started");
    let took = poll_until(
        Duration::from_secs(20),
        "the survivor takes every partition",
        || held(&handle) == PARTITIONS as usize,
    );
    println!("the killed child's partitions were taken over within {took:?}");
    main.block_on(append(&store, 2));
    main.block_on(assert_checkpoints_exactly_once(&store));
    rt.block_on(kernel.shutdown());
}
