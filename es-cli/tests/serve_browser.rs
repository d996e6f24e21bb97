//! `es serve` in a real browser: headless Chromium (Debian's `chromium`) loads the pages of a
//! seeded store, runs their script, and its DOM (`--dump-dom`) must show the seeded data; a
//! screenshot of a stream page must come out.
//!
//! Without `chromium` on the PATH (or in `ES_CHROMIUM`) the test fails when the `CI` variable
//! is set (`.ci/run` installs chromium, so there it always runs), and otherwise skips with a
//! message on stderr. `ES_SERVE_SCREENSHOT=docs/serve.png` also writes the screenshot there
//! (the README's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::*;

/// The browser: `ES_CHROMIUM`, else `chromium` on the PATH; `None` when there is none.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ES_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// Headless chromium, given its own profile directory, with `args` then `url`; its stdout.
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1200,900",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish with {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chromium failed on {url}: {:?}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_shows(dom: &str, page: &str, expected: &[&str]) {
    for text in expected {
        assert!(
            dom.contains(text),
            "the {page} page does not show {text:?}; its DOM:\n{dom}"
        );
    }
}

#[test]
fn the_pages_show_the_seeded_store_in_headless_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "chromium is missing, and CI is set: install Debian's `chromium` package \
                 (`apt-get install -y chromium`; .ci/run does) or point ES_CHROMIUM at a \
                 Chromium binary"
            );
        }
        eprintln!(
            "SKIPPED the_pages_show_the_seeded_store_in_headless_chromium: no chromium on the \
             PATH (install Debian's `chromium`, or set ES_CHROMIUM); with CI set this fails"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seeded_lmdb(&store));
    let server = Server::start(&common::lmdb(&store));
    let profile = dir.path().join("profile");
    let dom = |path: &str| {
        headless(
            &browser,
            &profile,
            &["--dump-dom"],
            &format!("{}{path}", server.base),
        )
    };

    let streams = dom("/");
    assert_shows(
        &streams,
        "streams",
        &[
            "bank_account (12)",
            "transfer (1)",
            "href=\"/streams/bank_account/acc-1\"",
            "href=\"/streams/transfer/t-7\"",
            &format!("head {EVENTS}"),
        ],
    );
    let searched = dom("/?q=t-7");
    assert_shows(
        &searched,
        "searched streams",
        &["href=\"/streams/transfer/t-7\""],
    );
    assert!(
        !searched.contains("/streams/bank_account/acc-1\""),
        "the search filters"
    );

    let stream = dom("/streams/bank_account/acc-1");
    assert_shows(
        &stream,
        "stream",
        &[
            "bank_account / acc-1",
            "version 2",
            "Opened v1",
            "Withdrawn v1",
            "\"owner\": \"owner 1\"",
            "\"amount\": 30",
            "cmd-transfer-7",
            "evt-transfer-started",
            "\"ip\": \"10.0.0.1\"",
            "2023-11-14T22:27:20Z",
            "href=\"/correlation/transfer-7\"",
        ],
    );

    let correlation = dom("/correlation/transfer-7");
    assert_shows(
        &correlation,
        "correlation",
        &[
            "4 events in 3 streams",
            "TransferStarted v1",
            "TransferCompleted v1",
            "bank_account/acc-2#2",
            "transfer/t-7#1",
        ],
    );

    let log = dom("/log?type=Opened");
    assert_shows(
        &log,
        "log",
        &["bank_account/acc-12", "Opened v1", "start of the log"],
    );
    assert!(!log.contains("Withdrawn"), "the log filters by type");

    let projections = dom("/projections");
    assert_shows(
        &projections,
        "projections",
        &[
            "balances",
            "process:transfers",
            "process manager",
            "720.000",
            "head position 16",
            "<svg",
        ],
    );

    let health = dom("/health?run");
    assert_shows(&health, "health", &["consistent", ">16<", ">13<"]);

    let shot = dir.path().join("stream.png");
    headless(
        &browser,
        &profile,
        &[&format!("--screenshot={}", shot.display())],
        &format!("{}/streams/bank_account/acc-1", server.base),
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    assert!(
        png.len() > 10_000,
        "the screenshot is not blank: {} bytes",
        png.len()
    );
    if let Some(to) = std::env::var_os("ES_SERVE_SCREENSHOT") {
        std::fs::write(&to, &png).unwrap();
    }
}
