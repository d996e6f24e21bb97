//! Store-level metrics, through the [`metrics`] facade: the names the durable stores report
//! (label `backend`: `lmdb`, `file` or `postgres`).
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`APPEND_SECONDS`] | histogram | `backend` | one `append` with events, as its caller waits for it (queueing and the group's flush included) |
//! | [`GROUP_SIZE`] | histogram | `backend` | appends committed together by one group commit |
//!
//! A store takes its handles when it is opened (built, for PostgreSQL), with the recorder in
//! force then; `es_core::metrics` has the kernel's names.

#![cfg_attr(
    not(any(feature = "lmdb", feature = "file", feature = "postgres")),
    allow(dead_code)
)]

use std::time::Instant;

use metrics::Histogram;

/// Histogram: seconds one `append` with events takes as its caller waits, label `backend`.
pub const APPEND_SECONDS: &str = "es_store_append_seconds";
/// Histogram: appends committed together by one group commit, label `backend`.
pub const GROUP_SIZE: &str = "es_store_group_size";

/// Every metric name `es-stores` registers.
pub const NAMES: &[&str] = &[APPEND_SECONDS, GROUP_SIZE];

/// The metrics of one open store.
pub(crate) struct StoreMetrics {
    append_seconds: Histogram,
    /// Requests per group commit.
    pub(crate) group_size: Histogram,
}

impl StoreMetrics {
    /// Registers the metrics of a `backend` store with the recorder in force.
    pub(crate) fn new(backend: &'static str) -> Self {
        Self {
            append_seconds: metrics::histogram!(APPEND_SECONDS, "backend" => backend),
            group_size: metrics::histogram!(GROUP_SIZE, "backend" => backend),
        }
    }

    /// Times one append until the returned guard is dropped.
    pub(crate) fn append_timer(&self) -> AppendTimer<'_> {
        AppendTimer {
            histogram: &self.append_seconds,
            started: Instant::now(),
        }
    }
}

/// Records the time since it was made into the append histogram when dropped.
pub(crate) struct AppendTimer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for AppendTimer<'_> {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed());
    }
}
