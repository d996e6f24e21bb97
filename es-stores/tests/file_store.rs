//! `FileStore`: durability across reopen, crash recovery, locking and the on-disk format.
#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use chrono::SecondsFormat;
use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError,
    StreamId,
};
use es_stores::FileStore;

fn account(id: &str) -> StreamId {
    StreamId::new("bank_account", id)
}

fn deposited(amount: u64) -> NewEvent {
    NewEvent::new("Deposited", format!(r#"{{"amount":{amount}}}"#))
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("events.jsonl")
}

fn log_lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(log_path(dir))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn reopen_keeps_events_snapshots_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (events, snapshot) = {
        let store = FileStore::open(dir.path()).unwrap();
        let a = store
            .append(
                &account("a"),
                ExpectedVersion::NoStream,
                vec![deposited(1), deposited(2)],
            )
            .await
            .unwrap();
        let b = store
            .append(
                &account("b"),
                ExpectedVersion::Any,
                vec![NewEvent::new("Opened", vec![0u8, 159, 146, 150]).metadata("user", "eve")],
            )
            .await
            .unwrap();
        let snapshot = Snapshot::new(account("a"), 2, br#"{"balance":3}"#.to_vec());
        SnapshotStore::save(&store, snapshot.clone()).await.unwrap();
        CheckpointStore::save(&store, "balances", 3, Some(br#"{"a":3}"#.to_vec()))
            .await
            .unwrap();
        CheckpointStore::save(&store, "counter", 2, None)
            .await
            .unwrap();
        CheckpointStore::save(&store, "null-state", 1, Some(b"null".to_vec()))
            .await
            .unwrap();
        ([a.events, b.events].concat(), snapshot)
    };

    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().await.unwrap(), 3);
    assert_eq!(*store.subscribe().borrow(), 3);
    assert_eq!(store.read_all(0, 100).await.unwrap(), events);
    assert_eq!(store.stream_version(&account("a")).await.unwrap(), 2);
    assert_eq!(store.stream_version(&account("b")).await.unwrap(), 1);
    assert_eq!(
        store.read_stream(&account("b"), 1, 10).await.unwrap(),
        events[2..]
    );
    assert_eq!(
        store.load_latest(&account("a")).await.unwrap(),
        Some(snapshot)
    );
    let balances = store.load("balances").await.unwrap().unwrap();
    assert_eq!(
        (balances.position, balances.state),
        (3, Some(br#"{"a":3}"#.to_vec()))
    );
    let counter = store.load("counter").await.unwrap().unwrap();
    assert_eq!((counter.position, counter.state), (2, None));
    let null_state = store.load("null-state").await.unwrap().unwrap();
    assert_eq!(null_state.state, Some(b"null".to_vec()));

    // Positions and versions continue where they were.
    let next = store
        .append(&account("a"), ExpectedVersion::Exact(2), vec![deposited(3)])
        .await
        .unwrap();
    assert_eq!((next.version, next.events[0].position), (3, 4));
}

#[tokio::test]
async fn log_lines_are_readable_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let json = store
        .append(
            &account("acc-1"),
            ExpectedVersion::NoStream,
            vec![deposited(5).metadata("correlation_id", "c-1")],
        )
        .await
        .unwrap();
    let binary = store
        .append(
            &StreamId::new("blob", "b/1"),
            ExpectedVersion::Any,
            vec![
                NewEvent::new("Raw", vec![0u8, 1, 2, 255]).version(2),
                NewEvent::new("Raw", Vec::new()),
            ],
        )
        .await
        .unwrap();
    let stamp = |e: &es_core::store::RecordedEvent| {
        e.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    };
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!(
            r#"{{"position":1,"stream":{{"type":"bank_account","id":"acc-1"}},"sequence":1,"type":"Deposited","version":1,"timestamp":"{}","metadata":{{"correlation_id":"c-1"}},"payload":{{"amount":5}}}}"#,
            stamp(&json.events[0])
        )
    );
    assert_eq!(
        lines[1],
        format!(
            r#"{{"position":2,"stream":{{"type":"blob","id":"b/1"}},"sequence":1,"type":"Raw","version":2,"timestamp":"{}","metadata":{{}},"batch_size":2,"payload_base64":"AAEC/w=="}}"#,
            stamp(&binary.events[0])
        )
    );
    assert_eq!(
        lines[2],
        format!(
            r#"{{"position":3,"stream":{{"type":"blob","id":"b/1"}},"sequence":2,"type":"Raw","version":1,"timestamp":"{}","metadata":{{}},"payload_base64":""}}"#,
            stamp(&binary.events[1])
        )
    );
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[tokio::test]
async fn json_payloads_are_stored_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let payloads: Vec<&[u8]> = vec![
        br#"{"z":1,"a":[1.50,2e3],"s":"\u00e9\n"}"#,
        br#"  { "spaced" : true }  "#,
        b"null",
        b"12345678901234567890123456789",
        b"{\"multi\":\n\"line\"}",
        b"not json",
    ];
    let events = payloads
        .iter()
        .map(|p| NewEvent::new("P", p.to_vec()))
        .collect();
    store
        .append(&account("p"), ExpectedVersion::Any, events)
        .await
        .unwrap();
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    let back: Vec<Vec<u8>> = store
        .read_all(1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(back, payloads);
    let lines = log_lines(dir.path());
    assert!(lines[0].ends_with(r#","payload":{"z":1,"a":[1.50,2e3],"s":"\u00e9\n"}}"#));
    assert!(lines[4].contains("\"payload_base64\":"));
}

#[tokio::test]
async fn torn_last_line_is_truncated_and_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        for amount in 1..=2 {
            store
                .append(&account("a"), ExpectedVersion::Any, vec![deposited(amount)])
                .await
                .unwrap();
        }
    }
    let good = fs::read(log_path(dir.path())).unwrap();

    // The process died in the middle of writing line 3: no trailing newline.
    let mut torn = good.clone();
    torn.extend_from_slice(br#"{"position":3,"stream":{"type":"bank_acc"#);
    fs::write(log_path(dir.path()), &torn).unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), good);
    assert_eq!(store.head_position().await.unwrap(), 2);
    let next = store
        .append(&account("a"), ExpectedVersion::Exact(2), vec![deposited(3)])
        .await
        .unwrap();
    assert_eq!(next.events[0].position, 3);
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 3);
    drop(store);

    // An unreadable last line (garbage the file system left after a crash) is cut off too.
    let good = fs::read(log_path(dir.path())).unwrap();
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"\0\0\0\0\0\0\0\0\n");
    fs::write(log_path(dir.path()), &garbage).unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), good);
    assert_eq!(store.head_position().await.unwrap(), 3);
}

#[tokio::test]
async fn a_complete_last_line_without_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        for amount in 1..=2 {
            store
                .append(&account("a"), ExpectedVersion::Any, vec![deposited(amount)])
                .await
                .unwrap();
        }
    }
    let good = fs::read(log_path(dir.path())).unwrap();
    // Cut exactly before the last newline (or an editor dropped it).
    fs::write(log_path(dir.path()), &good[..good.len() - 1]).unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(fs::read(log_path(dir.path())).unwrap(), good);
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
    store
        .append(&account("a"), ExpectedVersion::Exact(2), vec![deposited(3)])
        .await
        .unwrap();
    drop(store);
    assert_eq!(log_lines(dir.path()).len(), 3);

    // A last line that is valid JSON but not an event is not a torn write: it is reported.
    let mut text = fs::read(log_path(dir.path())).unwrap();
    text.extend_from_slice(b"{\"note\":\"hand-written\"}\n");
    fs::write(log_path(dir.path()), &text).unwrap();
    assert_corrupt_at(dir.path(), 4);
}

#[tokio::test]
async fn an_append_with_missing_lines_is_dropped_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        store
            .append(&account("a"), ExpectedVersion::NoStream, vec![deposited(1)])
            .await
            .unwrap();
        store
            .append(
                &account("b"),
                ExpectedVersion::NoStream,
                vec![deposited(1), deposited(2), deposited(3)],
            )
            .await
            .unwrap();
    }
    let full = fs::read(log_path(dir.path())).unwrap();
    let line_ends: Vec<usize> = full
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(line_ends.len(), 4);
    // The crash left the first two of the three lines of b's append, and half of the third.
    fs::write(log_path(dir.path()), &full[..line_ends[2] + 10]).unwrap();

    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(
        fs::read(log_path(dir.path())).unwrap(),
        &full[..line_ends[0]]
    );
    assert_eq!(store.head_position().await.unwrap(), 1);
    assert_eq!(store.stream_version(&account("b")).await.unwrap(), 0);
    let again = store
        .append(&account("b"), ExpectedVersion::NoStream, vec![deposited(9)])
        .await
        .unwrap();
    assert_eq!((again.version, again.events[0].position), (1, 2));
}

fn assert_corrupt_at(dir: &Path, line: u64) -> String {
    let before = fs::read(log_path(dir)).unwrap();
    let err = FileStore::open(dir).unwrap_err();
    let StoreError::Corrupt(message) = &err else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert!(message.contains("events.jsonl"), "{message}");
    assert!(message.contains(&format!("line {line}:")), "{message}");
    assert_eq!(
        fs::read(log_path(dir)).unwrap(),
        before,
        "the log was rewritten"
    );
    message.clone()
}

#[tokio::test]
async fn a_corrupt_middle_line_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        for amount in 1..=3 {
            store
                .append(&account("a"), ExpectedVersion::Any, vec![deposited(amount)])
                .await
                .unwrap();
        }
    }
    let lines = log_lines(dir.path());

    // Garbage in line 2.
    fs::write(
        log_path(dir.path()),
        format!("{}\n{{\"position\":2,\"str\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    assert_corrupt_at(dir.path(), 2);

    // Lines out of order: positions are checked.
    fs::write(
        log_path(dir.path()),
        format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]),
    )
    .unwrap();
    let message = assert_corrupt_at(dir.path(), 2);
    assert!(message.contains("position 3"), "{message}");

    // A sequence that skips: sequences are checked.
    let skipped = lines[2].replace("\"sequence\":3", "\"sequence\":4");
    fs::write(
        log_path(dir.path()),
        format!("{}\n{}\n{}\n", lines[0], lines[1], skipped),
    )
    .unwrap();
    let message = assert_corrupt_at(dir.path(), 3);
    assert!(message.contains("sequence 4"), "{message}");

    // Repairing the file by hand makes the store open again.
    fs::write(log_path(dir.path()), lines.join("\n") + "\n").unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().await.unwrap(), 3);
}

#[tokio::test]
async fn a_corrupt_line_found_by_a_read_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store
        .append(
            &account("a"),
            ExpectedVersion::Any,
            vec![NewEvent::new("Raw", vec![1u8, 2, 3])],
        )
        .await
        .unwrap();
    // Damage the base64 in place (same length), behind the open store's back.
    let text = fs::read_to_string(log_path(dir.path())).unwrap();
    fs::write(log_path(dir.path()), text.replace("AQID", "A!ID")).unwrap();
    match store.read_all(1, 10).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("events.jsonl, line 1:"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_opener_in_this_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    match FileStore::open(dir.path()) {
        Err(StoreError::Locked(message)) => {
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // A clone shares the store; the directory is released when the last clone is dropped.
    let clone = store.clone();
    drop(store);
    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
    drop(clone);
    FileStore::open(dir.path()).unwrap();
}

const PROBE_DIR: &str = "ES_FILE_STORE_PROBE_DIR";

/// Run by `a_second_opener_in_another_process_is_refused` in a child process; does nothing
/// otherwise.
#[test]
fn child_probe_open_is_refused() {
    let Some(dir) = std::env::var_os(PROBE_DIR) else {
        return;
    };
    match FileStore::open(&dir) {
        Err(StoreError::Locked(_)) => {}
        other => panic!("expected Locked in the child process, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_opener_in_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_probe_open_is_refused", "--nocapture"])
        .env(PROBE_DIR, dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    drop(store);
}

#[tokio::test]
async fn names_from_user_strings_stay_inside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("store")).unwrap();
    let evil = StreamId::new("..", "../../escape/me");
    SnapshotStore::save(&store, Snapshot::new(evil.clone(), 1, b"state".to_vec()))
        .await
        .unwrap();
    CheckpointStore::save(&store, "../../escape", 7, None)
        .await
        .unwrap();
    CheckpointStore::save(&store, "", 8, None).await.unwrap();
    assert_eq!(
        store.load_latest(&evil).await.unwrap().unwrap().state,
        b"state"
    );
    assert_eq!(
        store.load("../../escape").await.unwrap().unwrap().position,
        7
    );
    assert_eq!(store.load("").await.unwrap().unwrap().position, 8);
    assert_eq!(store.load("escape").await.unwrap(), None);

    let outside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("store")]);
    let snapshot_dirs: Vec<_> = fs::read_dir(dir.path().join("store/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(snapshot_dirs, vec!["%2E%2E.%2E%2E%2F%2E%2E%2Fescape%2Fme"]);
}

#[tokio::test]
async fn snapshot_prune_keeps_the_latest_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let stream = account("a");
    for version in [1, 5, 10, 20] {
        SnapshotStore::save(
            &store,
            Snapshot::new(stream.clone(), version, format!("{{\"v\":{version}}}")),
        )
        .await
        .unwrap();
    }
    store.prune(&stream, 2).await.unwrap();
    let mut files: Vec<_> = fs::read_dir(dir.path().join("snapshots/bank_account.a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec!["00000000000000000010.json", "00000000000000000020.json"]
    );
    let text = fs::read_to_string(
        dir.path()
            .join("snapshots/bank_account.a/00000000000000000020.json"),
    )
    .unwrap();
    assert!(
        text.starts_with(
            r#"{"stream":{"type":"bank_account","id":"a"},"version":20,"timestamp":""#
        ),
        "{text}"
    );
    assert!(text.ends_with(",\"state\":{\"v\":20}}\n"), "{text}");
    store.prune(&stream, 0).await.unwrap();
    assert_eq!(store.load_latest(&stream).await.unwrap(), None);
}

/// More appenders than the writer's queue holds (4096): the rest wait for room (back-pressure)
/// and every append is answered and written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_appenders_than_the_queue_holds_all_commit() {
    const APPENDERS: u64 = 5000;
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &account(&i.to_string()),
                        ExpectedVersion::NoStream,
                        vec![deposited(i)],
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().version, 1);
    }
    store.close().await.unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.head_position().await.unwrap(), APPENDERS);
    assert_eq!(log_lines(dir.path()).len() as u64, APPENDERS);
}

/// A directory without a `format` file is format 1: opening it writes `2` once, and a store
/// created now has it from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_file_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("format");
    {
        let store = FileStore::open(dir.path()).unwrap();
        store
            .append(&account("a"), ExpectedVersion::NoStream, vec![deposited(1)])
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    assert_eq!(fs::read_to_string(&marker).unwrap(), "2\n");
    fs::remove_file(&marker).unwrap();
    {
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.head_position().await.unwrap(), 1);
        store.close().await.unwrap();
    }
    assert_eq!(fs::read_to_string(&marker).unwrap(), "2\n");
    let written = fs::metadata(&marker).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(FileStore::open(dir.path()).unwrap());
    assert_eq!(
        fs::metadata(&marker).unwrap().modified().unwrap(),
        written,
        "a current marker is left alone"
    );
}

/// A directory of a newer format (or whose marker is not a format version) is refused with
/// `Incompatible`, before anything in it is touched.
#[test]
fn a_newer_format_is_refused() {
    for marker in ["4\n", "99", "v2", ""] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("format"), marker).unwrap();
        match FileStore::open(dir.path()) {
            Err(StoreError::Incompatible(message)) => {
                assert!(message.contains("format"), "{marker:?}: {message}");
            }
            other => panic!("{marker:?}: expected Incompatible, got {other:?}"),
        }
        assert_eq!(
            fs::read_to_string(dir.path().join("format")).unwrap(),
            marker,
            "{marker:?}: left as it was"
        );
        assert!(
            !log_path(dir.path()).exists(),
            "{marker:?}: no log was created"
        );
    }
}

/// The envelope is written as readable fields of the line (absent ones left out), and the line
/// of an event without one is written as format 1 wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_fields_are_readable_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let at = chrono::DateTime::from_timestamp(1_000_000_000, 5).unwrap();
    store
        .append(
            &account("a"),
            ExpectedVersion::NoStream,
            vec![
                deposited(1)
                    .command_id("cmd-1")
                    .correlation_id("order-42")
                    .tag("vip")
                    .metadata("attempt", 3)
                    .metadata("caller", serde_json::json!({"user": "ann"}))
                    .timestamp(at),
                deposited(2),
            ],
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    let lines = log_lines(dir.path());
    assert_eq!(
        lines[0],
        r#"{"position":1,"stream":{"type":"bank_account","id":"a"},"sequence":1,"type":"Deposited","version":1,"timestamp":"2001-09-09T01:46:40.000000005Z","command_id":"cmd-1","correlation_id":"order-42","tags":["vip"],"metadata":{"attempt":3,"caller":{"user":"ann"}},"batch_size":2,"payload":{"amount":1}}"#
    );
    assert!(
        !lines[1].contains("_id") && !lines[1].contains("tags"),
        "{}",
        lines[1]
    );
}
