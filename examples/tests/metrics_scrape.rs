//! The `metrics` example's setup, scraped over HTTP: the bank domain under load with the
//! Prometheus exporter installed, and every documented metric name in the scrape. Also checks
//! that the table of docs/metrics.md documents exactly the names the code registers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use es_examples::load::{Load, node, run, start_projections};
use es_stores::LmdbStore;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every name the code registers.
fn names() -> BTreeSet<&'static str> {
    es_core::metrics::NAMES
        .iter()
        .chain(es_stores::metrics::NAMES)
        .copied()
        .collect()
}

/// `GET /metrics` over a plain HTTP/1.1 connection; the body.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The sum of the values of the samples of `name` (every label set).
fn total(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_metrics_table_documents_exactly_the_registered_names() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
            .expect("docs/metrics.md");
    // The metrics table: the rows after its header, up to the first line that is not a row.
    let documented: BTreeSet<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| metric | kind | labels |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .collect();
    assert_eq!(documented, names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_the_example_finds_every_documented_name() {
    // A free port (released again just before the exporter binds it).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let nodes = [node(store.clone()).unwrap(), node(store).unwrap()];
    start_projections(&nodes[0]).await.unwrap();
    let load = Load {
        accounts: 150,
        working_set: 100,
        duration: Some(Duration::from_secs(3)),
        ..Load::default()
    };
    let report = run(&nodes, &load).await;
    assert!(report.ok > 0, "{report:?}");
    // The lag monitor refreshes within a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let body = scrape(addr).await;
    for name in names() {
        assert!(
            body.lines().any(|line| line
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))),
            "{name} is not in the scrape:\n{body}"
        );
    }
    // And the figures moved under the load.
    for moved in [
        "es_commands_total",
        "es_conflict_reruns_total",
        "es_passivations_total",
        "es_rehydrations_total",
        "es_events_replayed_total",
        "es_snapshot_hits_total",
        "es_projection_events_handled_total",
        "es_projection_events_skipped_total",
        "es_batch_size_count",
        "es_store_append_seconds_count",
        "es_store_group_size_count",
    ] {
        assert!(total(&body, moved) > 0.0, "{moved} did not move:\n{body}");
    }
    let stats = nodes[0].stats();
    assert_eq!(stats.projections.len(), 2);
    for node in &nodes {
        node.shutdown().await;
    }
}
