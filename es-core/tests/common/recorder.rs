//! A test recorder: `metrics-util`'s registry with atomic storage, read back without resetting
//! anything, installed per test (see `tests/metrics.rs`).
#![allow(clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use es_core::{Kernel, KernelBuilder};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// A recorder that keeps every value, for reading back.
#[derive(Clone)]
pub struct TestRecorder(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0
            .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

/// A recorder of one test.
pub struct Rec {
    recorder: TestRecorder,
}

/// `name{label=value,...}` (labels sorted) for a key.
pub fn id(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Rec {
    pub fn new() -> Self {
        Self {
            recorder: TestRecorder(Arc::new(Registry::atomic())),
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
        let registry = &self.recorder.0;
        let mut ids: Vec<String> = (registry.get_counter_handles().keys())
            .chain(registry.get_gauge_handles().keys())
            .chain(registry.get_histogram_handles().keys())
            .map(id)
            .collect();
        ids.sort();
        ids
    }

    pub fn counter(&self, wanted: &str) -> u64 {
        let handles = self.recorder.0.get_counter_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, value)) => value.load(Ordering::SeqCst),
            None => panic!("{wanted}: not a registered counter: {:?}", self.ids()),
        }
    }

    pub fn gauge(&self, wanted: &str) -> f64 {
        let handles = self.recorder.0.get_gauge_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, value)) => f64::from_bits(value.load(Ordering::SeqCst)),
            None => panic!("{wanted}: not a registered gauge: {:?}", self.ids()),
        }
    }

    /// Every sample a histogram got so far.
    pub fn histogram(&self, wanted: &str) -> Vec<f64> {
        let handles = self.recorder.0.get_histogram_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, bucket)) => bucket.data(),
            None => panic!("{wanted}: not a registered histogram: {:?}", self.ids()),
        }
    }
}
