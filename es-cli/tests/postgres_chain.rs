//! The `es` binary with PostgreSQL: the copy chain memory export → file → LMDB → PostgreSQL →
//! LMDB, equal at each step, and a copy into PostgreSQL resumed after SIGKILL. Needs the
//! `postgres` feature and a server in `ES_PG_URL` (without one these tests fail). Also `es dlq`
//! edits, which take the runner lease on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use es_stores::FileStore;

/// The server URL from `ES_PG_URL`; a test without it fails, naming the variable.
fn pg_url() -> String {
    match std::env::var("ES_PG_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "ES_PG_URL is not set: these tests need a PostgreSQL server, e.g. \
             ES_PG_URL=postgresql://postgres@127.0.0.1:5432/test (run `cargo test` without the \
             `postgres` feature to leave them out)"
        ),
    }
}

/// A schema of its own for one test, dropped when the guard goes.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(prefix: &str) -> Schema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("es_cli_{prefix}_{}_{nanos:x}", std::process::id());
        let base = pg_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        Schema {
            url: format!("{base}{sep}schema={name}"),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = pg_url();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&base).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop schema {}", self.name);
        }
    }
}

#[test]
fn copy_chain_memory_export_file_lmdb_postgres_lmdb() {
    let tmp = tempfile::tempdir().unwrap();
    let export_path = tmp.path().join("memory.jsonl");
    let original = rt().block_on(memory_export(&export_path, sample_events(3_000, 97)));
    assert_envelope_exported(&original);
    let expected = comparable(&original, false, KEEPS_TIMESTAMPS);

    let file_url = file(&tmp.path().join("file"));
    run_ok(
        &[
            "--store",
            &file_url,
            "import",
            export_path.to_str().unwrap(),
        ],
        0,
    );
    assert_same(
        &comparable(&export(&file_url), false, KEEPS_TIMESTAMPS),
        &expected,
        "import",
    );
    rt().block_on(async {
        let store = FileStore::open(tmp.path().join("file")).unwrap();
        add_snapshot_and_checkpoint(&store, 1_234).await;
        store.close().await.unwrap();
    });

    let schema = Schema::new("chain");
    let chain = [
        lmdb(&tmp.path().join("lmdb1")),
        schema.url.clone(),
        lmdb(&tmp.path().join("lmdb2")),
    ];
    let mut previous = file_url;
    let mut exports = Vec::new();
    for url in chain {
        let out = run_ok(&["--store", &previous, "copy", "--to", &url], 0);
        assert!(
            out.contains("copied 3000 events (0 already there)"),
            "{out}"
        );
        assert!(out.contains("1 snapshots, 1 checkpoints"), "{out}");
        let exported = export(&url);
        assert_same(
            &comparable(&exported, false, KEEPS_TIMESTAMPS),
            &expected,
            &url,
        );
        // The checkpoint names the same event in every store, whatever its positions.
        let cp = projections(&url)[0]["position"].as_u64().unwrap();
        let at = exported
            .iter()
            .find(|e| e["position"].as_u64() == Some(cp))
            .unwrap();
        assert_eq!(
            comparable(std::slice::from_ref(at), false, KEEPS_TIMESTAMPS)[0],
            expected[1_233],
            "{url}"
        );
        assert_eq!(stats(&url)["snapshots"], 1);
        run_ok(&["--store", &url, "verify"], 0);
        exports.push(comparable(&exported, false, true));
        previous = url;
    }
    if KEEPS_TIMESTAMPS {
        assert_same(&exports[0], &exports[1], "timestamps kept by PostgreSQL");
        assert_same(&exports[1], &exports[2], "timestamps kept by the copy");
    }
}

#[test]
fn copy_into_postgres_resumes_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let source_dir = tmp.path().join("source");
    // Large enough that the copy is still writing events when the kill lands, even on a quiet
    // machine where PostgreSQL takes many appends per statement.
    let total = 300_000;
    rt().block_on(lmdb_source(&source_dir, sample_events(total, 1_000)));
    let source = lmdb(&source_dir);
    let schema = Schema::new("resume");
    let mut child = es()
        .args(["--store", &source, "copy", "--to", &schema.url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the target holds some events, then kill the copy.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "the copy wrote nothing in 120 s");
        let out = run(&["--store", &schema.url, "--json", "stats"]);
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if s["events"].as_u64().unwrap_or(0) > 2_000 {
                break;
            }
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let partial = stats(&schema.url)["events"].as_u64().unwrap();
    assert!(partial > 0 && partial < total as u64, "{partial}");

    let out = run_ok(&["--store", &source, "copy", "--to", &schema.url], 0);
    assert!(out.contains("already there"), "{out}");
    let copied = export(&schema.url);
    assert_eq!(copied.len(), total);
    assert_same(
        &comparable(&copied, false, KEEPS_TIMESTAMPS),
        &comparable(&export(&source), false, KEEPS_TIMESTAMPS),
        "resumed copy",
    );
    run_ok(&["--store", &schema.url, "verify"], 0);
}

/// A projection that fails on every event of stream `note/bad`.
#[derive(Debug, Default, Clone)]
struct FailsOnBad;

impl es_core::projection::Projection for FailsOnBad {
    const NAME: &'static str = "fails_on_bad";
    fn accepts(event_type: &str) -> bool {
        event_type == "Noted"
    }
    fn handle(
        &mut self,
        event: &es_core::RecordedEvent,
    ) -> Result<(), es_core::projection::ProjectionError> {
        if event.stream.aggregate_id == "bad" {
            return Err(es_core::projection::ProjectionError::State(
                "bad is broken".to_owned(),
            ));
        }
        Ok(())
    }
}

/// `es dlq skip` on PostgreSQL takes the runner's lease for its edit: refused while a kernel's
/// runner holds it, done once that runner is gone. Listing reads the checkpoint at any time.
#[test]
fn dlq_edits_on_postgres_wait_for_the_runner_lease() {
    use es_core::prelude::*;
    use es_core::projection::ErrorPolicy;

    let schema = Schema::new("dlq");
    let url = schema.url.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (kernel, position) = runtime.block_on(async {
        let store = es_stores::open(&url).await.unwrap();
        let kernel = Kernel::builder().store(store.clone()).build().unwrap();
        let handle = kernel
            .projections()
            .start::<FailsOnBad>(ProjectionOptions::default().error_policy(ErrorPolicy::park()))
            .await
            .unwrap();
        let done = store
            .append(
                &StreamId::new("note", "bad"),
                ExpectedVersion::Any,
                vec![NewEvent::new("Noted", b"{}".to_vec())],
            )
            .await
            .unwrap();
        let position = done.events[0].position;
        handle.wait_for(position).await.unwrap();
        (kernel, position)
    });
    let p = position.to_string();
    let skip = [
        "--store",
        &url,
        "dlq",
        "skip",
        "fails_on_bad",
        "note/bad",
        &p,
        "--reason",
        "operator",
    ];

    let listed = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "fails_on_bad", "--json"],
        0,
    ));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["position"].as_u64(), Some(position));
    let out = run(&skip);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));

    runtime.block_on(kernel.shutdown());
    drop(kernel);
    run_ok(&skip, 0);
    let listed = parse_lines(&run_ok(
        &["--store", &url, "dlq", "list", "fails_on_bad", "--json"],
        0,
    ));
    assert_eq!(listed[0]["skipped"], "operator");
}
