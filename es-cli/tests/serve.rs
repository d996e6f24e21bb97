//! `es serve`: the JSON API, through HTTP as scripts use it (reqwest), on a seeded LMDB store
//! served by the `es` binary, and the live follow (server-sent events) on LMDB and file
//! stores written while they are served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve_support;

use serde_json::Value;
use serve_support::*;

#[tokio::test]
async fn the_api_shows_streams_events_log_correlations_projections_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    seeded_lmdb(dir.path()).await;
    let server = Server::start(&common::lmdb(dir.path()));
    let base = server.base.as_str();

    let summary = get_json(base, "/api/summary", 200).await;
    assert_eq!(summary["backend"], "lmdb");
    assert_eq!(summary["head_position"], EVENTS);
    assert_eq!(summary["newest_timestamp"], "2023-11-14T22:29:20Z");

    // Streams: counts by aggregate type, filters, search, paging with a cursor.
    let types = get_json(base, "/api/stream-types", 200).await;
    assert_eq!(
        types,
        serde_json::json!([{"type": "bank_account", "streams": 12}, {"type": "transfer", "streams": 1}])
    );
    let transfers = get_json(base, "/api/streams?type=transfer", 200).await;
    assert_eq!(
        transfers["streams"],
        serde_json::json!([{"type": "transfer", "id": "t-7", "version": 2}])
    );
    let found = get_json(base, "/api/streams?q=ACC-1", 200).await;
    let ids: Vec<&str> = found["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["acc-1", "acc-10", "acc-11", "acc-12"],
        "search ignores case"
    );
    let mut seen = Vec::new();
    let mut query = "/api/streams?type=bank_account&limit=5".to_owned();
    loop {
        let page = get_json(base, &query, 200).await;
        let streams = page["streams"].as_array().unwrap();
        assert!(streams.len() <= 5);
        seen.extend(streams.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        let Some(next) = page["next"].as_object() else {
            break;
        };
        query = format!(
            "/api/streams?type=bank_account&limit=5&after_type={}&after_id={}",
            next["type"].as_str().unwrap(),
            next["id"].as_str().unwrap()
        );
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        ACCOUNTS,
        "paging shows every stream once: {seen:?}"
    );
    let bad = get_json(base, "/api/streams?after_type=bank_account", 400).await;
    assert!(bad["error"].as_str().unwrap().contains("after_id"));

    // A stream: every event with its whole envelope, the payload as JSON, paging by sequence.
    let acc1 = get_json(base, "/api/streams/bank_account/acc-1", 200).await;
    assert_eq!(acc1["version"], 2);
    assert_eq!(acc1["next_from"], Value::Null);
    let withdrawn = &acc1["events"][1];
    assert_eq!(withdrawn["type"], "Withdrawn");
    assert_eq!(withdrawn["sequence"], 2);
    assert_eq!(withdrawn["position"], 14);
    assert_eq!(withdrawn["correlation_id"], TRANSFER);
    assert_eq!(withdrawn["causation_id"], "evt-transfer-started");
    assert_eq!(withdrawn["command_id"], "cmd-transfer-7");
    assert_eq!(withdrawn["tags"], serde_json::json!(["transfer"]));
    assert_eq!(withdrawn["metadata"]["ip"], "10.0.0.1");
    assert_eq!(withdrawn["timestamp"], "2023-11-14T22:27:20Z");
    assert_eq!(withdrawn["payload"], serde_json::json!({"amount": 30}));
    let first = get_json(base, "/api/streams/bank_account/acc-1?limit=1", 200).await;
    assert_eq!(first["next_from"], 2);
    let second = get_json(base, "/api/streams/bank_account/acc-1?from=2", 200).await;
    assert_eq!(positions(&second["events"]), [14]);
    let missing = get_json(base, "/api/streams/bank_account/nosuch", 404).await;
    assert!(missing["error"].as_str().unwrap().contains("no events"));

    // The log: newest first, filtered, paged backwards.
    let log = get_json(base, "/api/log?limit=3", 200).await;
    assert_eq!(log["head"], EVENTS);
    assert_eq!(positions(&log["events"]), [16, 15, 14]);
    assert_eq!(log["next_before"], 14);
    let older = get_json(base, "/api/log?limit=3&before=14", 200).await;
    assert_eq!(positions(&older["events"]), [13, 12, 11]);
    let opened = get_json(base, "/api/log?type=Opened&limit=100", 200).await;
    assert_eq!(
        positions(&opened["events"]),
        (1..=12).rev().collect::<Vec<u64>>()
    );
    assert_eq!(opened["next_before"], Value::Null, "the start of the log");
    let transfer_log = get_json(base, "/api/log?aggregate=transfer&limit=1", 200).await;
    assert_eq!(positions(&transfer_log["events"]), [16]);
    let rest = get_json(base, "/api/log?aggregate=transfer&limit=1&before=16", 200).await;
    assert_eq!(positions(&rest["events"]), [13]);

    // A correlation id: every event of the transfer, across its three streams, in log order.
    let corr = get_json(base, &format!("/api/correlation/{TRANSFER}"), 200).await;
    assert_eq!(corr["correlation_id"], TRANSFER);
    assert_eq!(positions(&corr["events"]), [13, 14, 15, 16]);
    assert_eq!(corr["truncated"], false);
    let streams: Vec<String> = corr["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}/{}", e["stream"]["type"], e["stream"]["id"]).replace('"', ""))
        .collect();
    assert_eq!(
        streams,
        [
            "transfer/t-7",
            "bank_account/acc-1",
            "bank_account/acc-2",
            "transfer/t-7"
        ]
    );
    let cut = get_json(base, &format!("/api/correlation/{TRANSFER}?limit=2"), 200).await;
    assert_eq!(positions(&cut["events"]), [13, 14]);
    assert_eq!(cut["truncated"], true);
    let none = get_json(base, "/api/correlation/nosuch", 200).await;
    assert_eq!(none["events"], serde_json::json!([]));

    // Projections and process managers: position, lag in events and in seconds.
    let projections = get_json(base, "/api/projections", 200).await;
    assert_eq!(projections["head"], EVENTS);
    assert_eq!(
        projections["projections"],
        serde_json::json!([
            {"name": "balances", "kind": "projection", "position": 4, "lag": 12,
             "lag_seconds": 720.0, "state_bytes": 7},
            {"name": "process:transfers", "kind": "process manager", "position": 16, "lag": 0,
             "lag_seconds": 0.0, "state_bytes": null},
        ])
    );

    // Verify, as `es verify --json` reports it.
    let verify = get_json(base, "/api/verify", 200).await;
    assert_eq!(verify["consistent"], true);
    assert_eq!(verify["events"], EVENTS);
    assert_eq!(verify["streams"], 13);
    assert_eq!(verify["checkpoints"], 2);
    assert_eq!(verify["findings"], serde_json::json!([]));

    // Unknown routes are 404 (JSON under /api/).
    let unknown = get_json(base, "/api/nosuch", 404).await;
    assert!(unknown["error"].is_string());
}

#[tokio::test]
async fn the_console_is_read_only_and_answers_only_loopback_host_names() {
    let dir = tempfile::tempdir().unwrap();
    seeded_lmdb(dir.path()).await;
    let server = Server::start(&common::lmdb(dir.path()));
    let base = server.base.as_str();
    let http = client();
    for (method, path) in [
        (reqwest::Method::POST, "/api/streams"),
        (reqwest::Method::DELETE, "/api/streams/bank_account/acc-1"),
        (reqwest::Method::PUT, "/api/projections"),
        (reqwest::Method::POST, "/api/verify"),
    ] {
        let res = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status().as_u16(),
            405,
            "{method} {path} must not be allowed"
        );
    }
    // The pages and their assets come from the binary, with headers that keep them apart.
    let page = http.get(format!("{base}/log")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    let js = http
        .get(format!("{base}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // DNS rebinding: a request naming another host is refused.
    let port = base.rsplit(':').next().unwrap();
    let status_for_host = |host: String| {
        let request = http.get(format!("{base}/api/summary")).header("host", host);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status_for_host(format!("evil.example:{port}")).await, 421);
    assert_eq!(status_for_host(format!("localhost:{port}")).await, 200);
}

#[test]
fn serve_refuses_a_bad_listen_address_and_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(&[
        "--store",
        &common::lmdb(&dir.path().join("nosuch")),
        "serve",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("no lmdb store"),
        "{}",
        common::stderr(&out)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seeded_lmdb(dir.path()));
    let out = common::run(&[
        "--store",
        &common::lmdb(dir.path()),
        "serve",
        "--listen",
        "localhost",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("bad --listen address"),
        "{}",
        common::stderr(&out)
    );
}

#[tokio::test]
async fn live_follow_sends_new_events_on_lmdb() {
    let dir = tempfile::tempdir().unwrap();
    follow_while_writing(&common::lmdb(dir.path()), false).await;
}

#[tokio::test]
async fn live_follow_sends_new_events_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    follow_while_writing(&common::file(dir.path()), false).await;
}

#[tokio::test]
async fn live_follow_sends_new_events_on_a_memory_store() {
    follow_while_writing("memory:", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_server_while_a_browser_follows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    seeded_lmdb(dir.path()).await;
    let mut server = Server::start(&common::lmdb(dir.path()));
    let mut follow = client()
        .get(format!("{}/api/follow?from=1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read_events(&mut follow, 1).await[0].0, 1);
    let status = tokio::task::block_in_place(|| server.interrupt());
    assert_eq!(status.code(), Some(0), "es serve exits 0 on Ctrl-C");
}
