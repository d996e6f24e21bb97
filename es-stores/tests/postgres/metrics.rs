//! The store's metrics: append latency and group sizes.

use es_core::store::{EventStore, ExpectedVersion};
use es_core::testkit::MetricsRecorder;
use es_stores::metrics::{APPEND_SECONDS, GROUP_SIZE};

use crate::postgres_common::{ev, s, store};

/// The store takes its metric handles when built: one append-latency sample per append with
/// events, and lane batch sizes that add up to the appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_report_latency_and_group_sizes() {
    let recorder = MetricsRecorder::new();
    let (store, _guard) = {
        // Everything up to the build runs on this thread, in this future.
        let _local = metrics::set_default_local_recorder(&recorder);
        store("metrics").await
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &s(&format!("m-{i}")),
                        ExpectedVersion::NoStream,
                        vec![ev(i)],
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    store
        .append(&s("m-0"), ExpectedVersion::Exact(1), Vec::new())
        .await
        .unwrap();
    let latencies = recorder.histogram(&format!("{APPEND_SECONDS}{{backend=postgres}}"));
    assert_eq!(latencies.len(), 20);
    assert!(
        latencies.iter().all(|s| *s > 0.0 && *s < 30.0),
        "{latencies:?}"
    );
    let groups = recorder.histogram(&format!("{GROUP_SIZE}{{backend=postgres}}"));
    assert_eq!(groups.iter().sum::<f64>(), 20.0, "{groups:?}");
}
