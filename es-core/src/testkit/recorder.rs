//! [`MetricsRecorder`]: a `metrics` recorder that keeps every value, for tests that check what a
//! kernel, a runner or a store reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};

/// A recorder that keeps every counter, gauge and histogram sample, read back (without
/// resetting anything) by the metric's id: `name{label=value,...}`, labels sorted by name.
///
/// Handles are taken when a kernel is built, a runner started or a store opened, so install it
/// around those: `metrics::with_local_recorder(&recorder, || builder.build())`, or
/// `metrics::set_default_local_recorder(&recorder)` while a future runs on this thread.
///
/// ```
/// use es_core::testkit::MetricsRecorder;
///
/// let recorder = MetricsRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("es_example_total", "kind" => "a").increment(2);
/// });
/// assert_eq!(recorder.counter("es_example_total{kind=a}"), 2);
/// assert_eq!(recorder.ids(), ["es_example_total{kind=a}"]);
/// ```
#[derive(Clone)]
pub struct MetricsRecorder(Arc<Registry<Key, AtomicStorage>>);

impl std::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MetricsRecorder").field(&self.ids()).finish()
    }
}

/// `name{label=value,...}` (labels sorted) for a key.
fn id(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl MetricsRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self(Arc::new(Registry::atomic()))
    }

    /// Every registered metric's id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let registry = &self.0;
        let mut ids: Vec<String> = (registry.get_counter_handles().keys())
            .chain(registry.get_gauge_handles().keys())
            .chain(registry.get_histogram_handles().keys())
            .map(id)
            .collect();
        ids.sort();
        ids
    }

    /// The value of counter `wanted` (an id).
    ///
    /// # Panics
    /// When no counter has that id (the message lists the registered ids).
    pub fn counter(&self, wanted: &str) -> u64 {
        let handles = self.0.get_counter_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, value)) => value.load(Ordering::SeqCst),
            None => panic!("{wanted}: not a registered counter: {:?}", self.ids()),
        }
    }

    /// The value of gauge `wanted` (an id).
    ///
    /// # Panics
    /// When no gauge has that id (the message lists the registered ids).
    pub fn gauge(&self, wanted: &str) -> f64 {
        let handles = self.0.get_gauge_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, value)) => f64::from_bits(value.load(Ordering::SeqCst)),
            None => panic!("{wanted}: not a registered gauge: {:?}", self.ids()),
        }
    }

    /// Every sample histogram `wanted` (an id) got so far.
    ///
    /// # Panics
    /// When no histogram has that id (the message lists the registered ids).
    pub fn histogram(&self, wanted: &str) -> Vec<f64> {
        let handles = self.0.get_histogram_handles();
        match handles.iter().find(|(key, _)| id(key) == wanted) {
            Some((_, bucket)) => bucket.data(),
            None => panic!("{wanted}: not a registered histogram: {:?}", self.ids()),
        }
    }
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder for MetricsRecorder {
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
