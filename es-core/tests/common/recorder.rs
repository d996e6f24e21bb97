//! A test's recorder (`es_core::testkit::MetricsRecorder`), installed while its kernel is built
//! or its runners start (see `tests/metrics.rs`).
#![allow(clippy::expect_used)]

use std::future::Future;

use es_core::testkit::MetricsRecorder;
use es_core::{Kernel, KernelBuilder};

/// A recorder of one test.
pub struct Rec {
    recorder: MetricsRecorder,
}

impl Rec {
    pub fn new() -> Self {
        Self {
            recorder: MetricsRecorder::new(),
        }
    }

    /// Builds a kernel with this recorder, so the kernel's handles report to it.
    pub fn build(&self, builder: KernelBuilder) -> Kernel {
        metrics::with_local_recorder(&self.recorder, || builder.build()).expect("kernel builds")
    }

    /// Runs `f` (a runner start) with this recorder as the thread's local recorder.
    pub async fn with<T>(&self, f: impl Future<Output = T>) -> T {
        let _guard = metrics::set_default_local_recorder(&self.recorder);
        f.await
    }

    /// Every registered metric's id.
    pub fn ids(&self) -> Vec<String> {
        self.recorder.ids()
    }

    pub fn counter(&self, wanted: &str) -> u64 {
        self.recorder.counter(wanted)
    }

    pub fn gauge(&self, wanted: &str) -> f64 {
        self.recorder.gauge(wanted)
    }

    /// Every sample a histogram got so far.
    pub fn histogram(&self, wanted: &str) -> Vec<f64> {
        self.recorder.histogram(wanted)
    }
}
