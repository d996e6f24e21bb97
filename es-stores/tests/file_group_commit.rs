//! `FileStore` group commit: concurrent appenders share fsyncs, every one is answered and the
//! log stays gapless. Its own test binary, because it installs a global tracing subscriber that
//! counts the writer's commits.
#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
use es_stores::FileStore;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// Counts the writer's group commits and the requests they carried.
#[derive(Default)]
struct Commits {
    groups: AtomicU64,
    requests: AtomicU64,
    largest: AtomicU64,
}

struct CountCommits(Arc<Commits>);

struct Requests(Option<u64>);

impl Visit for Requests {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "requests" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for CountCommits {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut requests = Requests(None);
        event.record(&mut requests);
        if let (true, Some(n)) = (
            event.metadata().target().starts_with("es_stores::file"),
            requests.0,
        ) {
            self.0.groups.fetch_add(1, Ordering::Relaxed);
            self.0.requests.fetch_add(n, Ordering::Relaxed);
            self.0.largest.fetch_max(n, Ordering::Relaxed);
        }
    }
}

fn install() -> Arc<Commits> {
    let commits = Arc::new(Commits::default());
    let subscriber = tracing_subscriber::registry().with(CountCommits(Arc::clone(&commits)));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    commits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_are_grouped_answered_and_gapless() {
    let commits = install();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    const TASKS: u64 = 64;
    const EACH: u64 = 20;

    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut positions = Vec::new();
            for i in 0..EACH {
                // Half the tasks share one stream (with `Any`), half own theirs (with `Exact`).
                let (stream, expected) = if t % 2 == 0 {
                    (StreamId::new("shared", "s"), ExpectedVersion::Any)
                } else {
                    (
                        StreamId::new("own", t.to_string()),
                        ExpectedVersion::Exact(i),
                    )
                };
                let done = store
                    .append(
                        &stream,
                        expected,
                        vec![NewEvent::new("N", format!("{{\"t\":{t},\"i\":{i}}}"))],
                    )
                    .await
                    .unwrap();
                positions.push(done.events[0].position);
            }
            positions
        }));
    }
    let mut positions = Vec::new();
    for task in tasks {
        positions.extend(task.await.unwrap());
    }
    positions.sort_unstable();
    let total = TASKS * EACH;
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());

    // Every event is in the log once, in position order, with gapless sequences per stream.
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, total);
    let mut sequences: BTreeMap<StreamId, Vec<u64>> = BTreeMap::new();
    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.position, i as u64 + 1);
        sequences
            .entry(event.stream.clone())
            .or_default()
            .push(event.sequence);
    }
    for (stream, seqs) in sequences {
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{stream}"
        );
    }

    let groups = commits.groups.load(Ordering::Relaxed);
    let largest = commits.largest.load(Ordering::Relaxed);
    eprintln!("{total} appends in {groups} group commits (largest group: {largest} requests)");
    assert_eq!(commits.requests.load(Ordering::Relaxed), total);
    assert!(
        groups < total && largest > 1,
        "appends were not grouped: {groups} commits for {total} appends"
    );
}

/// A rough throughput figure: `cargo test --release -p es-stores --no-default-features
/// --features file --test file_group_commit -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand in release mode"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    for tasks in [1u64, 16, 256] {
        let deadline = Instant::now() + Duration::from_secs(3);
        let count = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let count = Arc::clone(&count);
            handles.push(tokio::spawn(async move {
                let stream = StreamId::new("bench", format!("{tasks}-{t}"));
                let mut version = 0;
                while Instant::now() < deadline {
                    let payload =
                        format!(r#"{{"amount":{version},"note":"a typical small event"}}"#);
                    let done = store
                        .append(
                            &stream,
                            ExpectedVersion::Exact(version),
                            vec![NewEvent::new("Deposited", payload)],
                        )
                        .await
                        .unwrap();
                    version = done.version;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let start = Instant::now();
        for h in handles {
            h.await.unwrap();
        }
        let n = count.load(Ordering::Relaxed);
        eprintln!(
            "{tasks:>4} concurrent appenders: {n} durable appends in {:.1?} = {:.0}/s",
            start.elapsed(),
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let all = store.read_all(1, usize::MAX).await.unwrap();
    eprintln!("read_all of {} events: {:.1?}", all.len(), start.elapsed());
    drop(store);
    let start = Instant::now();
    let store = FileStore::open(dir.path()).unwrap();
    eprintln!(
        "reopen (scan of {} events): {:.1?}",
        store.head_position().await.unwrap(),
        start.elapsed()
    );
}
