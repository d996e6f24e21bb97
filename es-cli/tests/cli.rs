//! The `es` binary run as a user runs it: copy chains, a copy killed and resumed, verify on a
//! damaged store, import errors, a locked store, usage errors and the listings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use es_core::store::{CheckpointStore, EventStore, SnapshotStore};
use es_stores::{FileStore, LmdbStore};

/// memory export → file (import) → LMDB (copy) → LMDB (copy), equal at each step, with the
/// snapshot and checkpoint carried along.
#[test]
fn copy_chain_memory_export_file_lmdb_lmdb() {
    let tmp = tempfile::tempdir().unwrap();
    let export_path = tmp.path().join("memory.jsonl");
    let original = rt().block_on(memory_export(&export_path, sample_events(3_000, 97)));
    assert_envelope_exported(&original);
    assert_eq!(original.len(), 3_000);
    let expected = comparable(&original, true, KEEPS_TIMESTAMPS);

    let file_url = file(&tmp.path().join("file"));
    let out = run_ok(
        &[
            "--store",
            &file_url,
            "import",
            export_path.to_str().unwrap(),
        ],
        0,
    );
    assert!(out.contains("imported 3000 events"), "{out}");
    assert_same(
        &comparable(&export(&file_url), true, KEEPS_TIMESTAMPS),
        &expected,
        "import",
    );

    // A snapshot and a checkpoint, to be carried by the copies.
    rt().block_on(async {
        let store = FileStore::open(tmp.path().join("file")).unwrap();
        add_snapshot_and_checkpoint(&store, 1_234).await;
        store.close().await.unwrap();
    });

    let mut previous = file_url;
    let mut exports = Vec::new();
    for name in ["lmdb1", "lmdb2"] {
        let url = lmdb(&tmp.path().join(name));
        let out = run_ok(&["--store", &previous, "copy", "--to", &url], 0);
        assert!(
            out.contains("copied 3000 events (0 already there)"),
            "{out}"
        );
        assert!(out.contains("1 snapshots, 1 checkpoints"), "{out}");
        let exported = export(&url);
        assert_same(
            &comparable(&exported, true, KEEPS_TIMESTAMPS),
            &expected,
            name,
        );
        let cps = projections(&url);
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert_eq!(cps[0]["name"], "balances");
        assert_eq!(cps[0]["position"], 1_234);
        assert_eq!(stats(&url)["snapshots"], 1);
        run_ok(&["--store", &url, "verify"], 0);
        exports.push(exported);
        previous = url;
    }
    if KEEPS_TIMESTAMPS {
        assert_same(&exports[0], &exports[1], "timestamps kept by the copy");
    }

    // Copying again is a no-op that still checks everything.
    let out = run_ok(
        &[
            "--store",
            &previous,
            "copy",
            "--to",
            &lmdb(&tmp.path().join("lmdb1")),
        ],
        0,
    );
    assert!(
        out.contains("copied 0 events (3000 already there)"),
        "{out}"
    );
}

/// A copy killed (SIGKILL) in the middle and run again ends equal, with no event twice.
#[test]
fn copy_resumes_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let source_dir = tmp.path().join("source");
    let total = 200_000;
    rt().block_on(lmdb_source(&source_dir, sample_events(total, 1_000)));
    let source = lmdb(&source_dir);
    let target_dir = tmp.path().join("target");
    let target = file(&target_dir);

    let mut child = es()
        .args(["--store", &source, "copy", "--to", &target])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = target_dir.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        if size > 200_000 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it could be killed: make the source larger"
        );
        assert!(Instant::now() < deadline, "the copy wrote nothing in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let partial = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        partial > 0 && partial < total,
        "{partial} lines after the kill: not in the middle"
    );

    let out = run_ok(&["--store", &source, "copy", "--to", &target], 0);
    assert!(out.contains("already there"), "{out}");
    assert!(out.contains(&format!("{total} events")), "{out}");

    let expected = comparable(&export(&source), true, KEEPS_TIMESTAMPS);
    let copied = export(&target);
    assert_eq!(copied.len(), total, "events twice or missing");
    assert_same(
        &comparable(&copied, true, KEEPS_TIMESTAMPS),
        &expected,
        "resumed copy",
    );
    run_ok(&["--store", &target, "verify"], 0);
}

/// verify finds each kind of damage in a file store, by line, and changes nothing.
#[test]
fn verify_reports_a_corrupt_file_store_without_repairing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = FileStore::open(&dir).unwrap();
        fill(&store, sample_events(20, 3)).await;
        store.close().await.unwrap();
    });
    let url = file(&dir);
    let out = run_ok(&["--store", &url, "verify"], 0);
    assert!(out.contains("consistent (20 events"), "{out}");

    let log = dir.join("events.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[4] = "{\"position\":5,\"garbage".to_owned(); // line 5: not JSON
    lines[8] = lines[8].replacen("\"sequence\":", "\"sequence\":9", 1); // line 9: a sequence jump
    let mut damaged = lines.join("\n");
    damaged.push_str("\n{\"position\":21,\"str"); // a torn last line
    std::fs::write(&log, &damaged).unwrap();
    // A checkpoint ahead of the head.
    std::fs::write(
        dir.join("checkpoints").join("ahead.json"),
        r#"{"name":"ahead","position":999}"#,
    )
    .unwrap();

    let out = run(&["--store", &url, "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("events.jsonl line 5: not a valid event line"),
        "{stdout}"
    );
    assert!(stdout.contains("events.jsonl line 9: stream"), "{stdout}");
    assert!(
        stdout.contains("events.jsonl line 21: the last line is incomplete"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"ahead\" at position 999 is ahead of the head"),
        "{stdout}"
    );
    assert!(stdout.contains("problems found"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        damaged,
        "verify changed the file"
    );

    // --json reports the same findings for scripts.
    let out = run(&["--store", &url, "--json", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["consistent"], false);
    assert!(report["problems"].as_u64().unwrap() >= 4, "{report}");
}

/// verify reads a file store's lines as the store does: a payload whose bytes are `null` is
/// written as `"payload":null` and is JSON, and a binary payload declared in the metadata is
/// base64; neither is a problem.
#[test]
fn verify_takes_a_null_payload_and_a_declared_binary_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = FileStore::open(&dir).unwrap();
        use es_core::store::{ExpectedVersion, NewEvent, StreamId};
        let binary = NewEvent::new("B", vec![0, 159, 146, 150])
            .metadata("content_type", "application/octet-stream");
        store
            .append(
                &StreamId::new("t", "1"),
                ExpectedVersion::NoStream,
                vec![NewEvent::new("N", b"null".to_vec()), binary],
            )
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    let log = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    assert!(log.contains("\"payload\":null"), "{log}");
    assert!(log.contains("\"payload_base64\":"), "{log}");
    let out = run_ok(&["--store", &file(&dir), "verify"], 0);
    assert!(out.contains("consistent (2 events"), "{out}");
}

/// verify on LMDB: a snapshot ahead of its stream and a checkpoint ahead of the head.
#[test]
fn verify_reports_snapshots_and_checkpoints_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        fill(&store, sample_events(10, 2)).await;
        let stream = store.read_all(1, 1).await.unwrap().remove(0).stream;
        SnapshotStore::save(
            &store,
            es_core::store::Snapshot::new(stream, 50, b"{}".to_vec()),
        )
        .await
        .unwrap();
        CheckpointStore::save(&store, "late", 3, None)
            .await
            .unwrap();
        CheckpointStore::save(&store, "early", 11, None)
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    let out = run(&["--store", &lmdb(&dir), "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("at version 50 but the stream ends at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("projection \"early\": checkpoint at position 11 is ahead of the head 10"),
        "{stdout}"
    );
    assert!(!stdout.contains("\"late\""), "{stdout}");
    assert!(stdout.contains("2 problems found"), "{stdout}");
}

/// A malformed line is reported by number and nothing is written; a non-empty target and
/// a broken sequence are refused.
#[test]
fn import_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.jsonl");
    let lines = rt().block_on(memory_export(&good, sample_events(10, 2)));
    let text = std::fs::read_to_string(&good).unwrap();
    let mut bad: Vec<&str> = text.lines().collect();
    bad[2] = "{\"stream\": not json";
    let bad_path = tmp.path().join("bad.jsonl");
    std::fs::write(&bad_path, bad.join("\n")).unwrap();

    let target = lmdb(&tmp.path().join("t"));
    let out = run(&["--store", &target, "import", bad_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("line 3:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(
        stats(&target)["events"],
        0,
        "the failed import wrote events"
    );

    // A sequence that skips: the line of the skip is named.
    let mut skipped = lines.clone();
    // The first event of a stream that has more: its next event then skips a sequence.
    let first = (0..skipped.len())
        .find(|&i| {
            skipped[i]["sequence"] == 1
                && skipped[i + 1..]
                    .iter()
                    .any(|l| l["stream"] == skipped[i]["stream"])
        })
        .unwrap();
    skipped.remove(first);
    let skip_path = tmp.path().join("skip.jsonl");
    let skip_text: Vec<String> = skipped.iter().map(|v| v.to_string()).collect();
    std::fs::write(&skip_path, skip_text.join("\n")).unwrap();
    let out = run(&["--store", &target, "import", skip_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has sequence"), "{}", stderr(&out));

    // An unknown field (a typo) is an error too, with its line.
    let typo = text.replacen("\"sequence\"", "\"sequense\"", 1);
    let typo_path = tmp.path().join("typo.jsonl");
    std::fs::write(&typo_path, typo).unwrap();
    let out = run(&["--store", &target, "import", typo_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 1:"), "{}", stderr(&out));

    // A good import, from stdin; then a second one is refused.
    let out = es()
        .args(["--store", &target, "import"])
        .stdin(std::fs::File::open(&good).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(
        &comparable(&export(&target), true, KEEPS_TIMESTAMPS),
        &comparable(&lines, true, KEEPS_TIMESTAMPS),
        "import from stdin",
    );
    let out = run(&["--store", &target, "import", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already holds events"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stats(&target)["events"], 10);
}

/// An embedded store open in another process gets a message saying what to do.
#[test]
fn a_locked_store_gets_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = rt();
    let lmdb_store = LmdbStore::open(tmp.path().join("l")).unwrap();
    let file_store = FileStore::open(tmp.path().join("f")).unwrap();
    for url in [lmdb(&tmp.path().join("l")), file(&tmp.path().join("f"))] {
        let out = run(&["--store", &url, "stats"]);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("store locked"), "{err}");
        assert!(
            err.contains("in use by another process: stop that process"),
            "{err}"
        );
    }
    runtime.block_on(async {
        lmdb_store.close().await.unwrap();
        file_store.close().await.unwrap();
    });
    run_ok(&["--store", &lmdb(&tmp.path().join("l")), "stats"], 0);
}

/// Usage and input errors exit with 2 and say what to do.
#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["--store", "mysql://localhost/x", "stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown store URL scheme `mysql:`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("lmdb:DIR"), "{}", stderr(&out));

    let out = run(&["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--store URL or set ES_STORE"),
        "{}",
        stderr(&out)
    );

    let missing = lmdb(&tmp.path().join("nope"));
    let out = run(&["--store", &missing, "streams"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("there is no lmdb store"),
        "{}",
        stderr(&out)
    );
    assert!(
        !tmp.path().join("nope").exists(),
        "a read command created a store"
    );

    let out = run(&["--store", "memory:", "no-such-command"]);
    assert_eq!(out.status.code(), Some(2));

    // ES_STORE stands for --store.
    let out = es()
        .env("ES_STORE", "memory:")
        .args(["stats", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// The listings, their filters and --json; projections and their reset.
#[test]
fn listings_and_projection_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        fill(&store, sample_events(30, 4)).await;
        add_snapshot_and_checkpoint(&store, 20).await;
        store.close().await.unwrap();
    });
    let url = lmdb(&dir);

    let streams = parse_lines(&run_ok(&["--store", &url, "streams", "--json"], 0));
    let total: u64 = streams.iter().map(|s| s["version"].as_u64().unwrap()).sum();
    assert_eq!(total, 30);
    let table = run_ok(&["--store", &url, "streams"], 0);
    assert!(
        table.contains("bank_account") && table.contains("version"),
        "{table}"
    );

    let first = &streams[0];
    let (t, id) = (
        first["type"].as_str().unwrap(),
        first["id"].as_str().unwrap(),
    );
    let events = parse_lines(&run_ok(&["--store", &url, "events", t, id, "--json"], 0));
    assert_eq!(events.len() as u64, first["version"].as_u64().unwrap());
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e["sequence"] == i as u64 + 1)
    );

    let log = parse_lines(&run_ok(
        &[
            "--store", &url, "log", "--from", "5", "--limit", "4", "--json",
        ],
        0,
    ));
    let positions: Vec<u64> = log
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [5, 6, 7, 8]);
    let orders = parse_lines(&run_ok(
        &[
            "--store",
            &url,
            "log",
            "--aggregate",
            "order",
            "--type",
            "Deposited",
            "--json",
            "--limit",
            "0",
        ],
        0,
    ));
    assert!(!orders.is_empty());
    assert!(
        orders
            .iter()
            .all(|e| e["stream"]["type"] == "order" && e["type"] == "Deposited")
    );

    let tail = parse_lines(&run_ok(&["--store", &url, "tail", "-n", "3", "--json"], 0));
    let positions: Vec<u64> = tail
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [28, 29, 30]);

    let s = stats(&url);
    assert_eq!(
        (s["events"].as_u64(), s["head_position"].as_u64()),
        (Some(30), Some(30))
    );
    assert_eq!(
        (s["snapshots"].as_u64(), s["checkpoints"].as_u64()),
        (Some(1), Some(1))
    );

    let p = projections(&url);
    assert_eq!(
        (p[0]["position"].as_u64(), p[0]["lag"].as_u64()),
        (Some(20), Some(10))
    );

    let out = run(&["--store", &url, "projections", "reset", "balances"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rerun with --yes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(projections(&url)[0]["position"], 20, "reset without --yes");

    let out = run(&["--store", &url, "projections", "reset", "nosuch", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("those that have: balances"),
        "{}",
        stderr(&out)
    );

    run_ok(
        &["--store", &url, "projections", "reset", "balances", "--yes"],
        0,
    );
    let p = projections(&url);
    assert_eq!(
        (p[0]["position"].as_u64(), p[0]["lag"].as_u64()),
        (Some(0), Some(30))
    );
    assert!(p[0]["state_bytes"].is_null());
}

/// Progress bars: drawn on a terminal, not with --quiet, not when stdout is a pipe.
#[test]
fn progress_bars_only_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    rt().block_on(async {
        let store = LmdbStore::open(&dir).unwrap();
        fill(&store, sample_events(2_000, 10)).await;
        store.close().await.unwrap();
    });
    let url = lmdb(&dir);
    let bin = env!("CARGO_BIN_EXE_es");
    // Under a pseudo-terminal (util-linux `script`), the copy draws its bar.
    let on_tty = |extra: &str, target: &str| {
        let cmd = format!(
            "{bin} --store {url} {extra} copy --to lmdb:{}",
            tmp.path().join(target).display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("ES_STORE")
            .output()
            .expect("running `script` (util-linux) to get a terminal");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty("", "t1");
    assert!(
        shown.contains("events") && shown.contains("copy"),
        "{shown}"
    );
    assert!(
        shown.contains('%'),
        "no progress bar on a terminal: {shown}"
    );
    let quiet = on_tty("--quiet", "t2");
    assert!(!quiet.contains('%'), "a bar with --quiet: {quiet}");
    let out = run(&[
        "--store",
        &url,
        "copy",
        "--to",
        &lmdb(&tmp.path().join("t3")),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}
