//! The store-level metrics of the embedded stores move when appends happen: one append-latency
//! sample per append with events, and group sizes that add up to the appends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
use es_core::testkit::MetricsRecorder;
use es_stores::metrics::{APPEND_SECONDS, GROUP_SIZE};
use es_stores::{FileStore, LmdbStore};

/// `appends` concurrent one-event appends to distinct streams, plus an empty one.
async fn append_concurrently(store: &(impl EventStore + Clone), appends: usize) {
    let tasks: Vec<_> = (0..appends)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = StreamId::new("metrics", format!("s-{i}"));
                let event = NewEvent::new("Happened", br#"{"n":1}"#.to_vec());
                store
                    .append(&stream, ExpectedVersion::NoStream, vec![event])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let empty = StreamId::new("metrics", "s-0");
    store
        .append(&empty, ExpectedVersion::Exact(1), Vec::new())
        .await
        .unwrap();
}

/// `grouped`: the requests the writer saw (the file store's writer also checks empty appends).
fn check(recorder: &MetricsRecorder, backend: &str, appends: usize, grouped: usize) {
    let latencies = recorder.histogram(&format!("{APPEND_SECONDS}{{backend={backend}}}"));
    assert_eq!(
        latencies.len(),
        appends,
        "one sample per append with events"
    );
    assert!(
        latencies.iter().all(|s| *s > 0.0 && *s < 10.0),
        "{latencies:?}"
    );
    let groups = recorder.histogram(&format!("{GROUP_SIZE}{{backend={backend}}}"));
    assert!(!groups.is_empty() && groups.len() <= grouped, "{groups:?}");
    assert_eq!(
        groups.iter().sum::<f64>(),
        grouped as f64,
        "every append was in one group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmdb_reports_append_latency_and_group_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = MetricsRecorder::new();
    let store = metrics::with_local_recorder(&recorder, || LmdbStore::open(dir.path())).unwrap();
    append_concurrently(&store, 40).await;
    check(&recorder, "lmdb", 40, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_reports_append_latency_and_group_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = MetricsRecorder::new();
    let store = metrics::with_local_recorder(&recorder, || FileStore::open(dir.path())).unwrap();
    append_concurrently(&store, 40).await;
    check(&recorder, "file", 40, 41);
}
