//! [`MetricsRecorder`]: a `metrics` recorder that keeps every value, for tests that check what a
//! kernel, a runner or a store reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::Mutex;

/// A histogram's samples.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().push(value);
    }
}

/// Every metric registered so far, by id.
#[derive(Default)]
struct Registered {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

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
#[derive(Clone, Default)]
pub struct MetricsRecorder(Arc<Registered>);

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
        Self::default()
    }

    /// Every registered metric's id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let registered = &self.0;
        let mut ids: Vec<String> = (registered.counters.lock().keys().cloned())
            .chain(registered.gauges.lock().keys().cloned())
            .chain(registered.histograms.lock().keys().cloned())
            .collect();
        ids.sort();
        ids
    }

    /// The value of counter `wanted` (an id).
    ///
    /// # Panics
    /// When no counter has that id (the message lists the registered ids).
    pub fn counter(&self, wanted: &str) -> u64 {
        let value = self.0.counters.lock().get(wanted).cloned();
        match value {
            Some(value) => value.load(Ordering::SeqCst),
            None => panic!("{wanted}: not a registered counter: {:?}", self.ids()),
        }
    }

    /// The value of gauge `wanted` (an id).
    ///
    /// # Panics
    /// When no gauge has that id (the message lists the registered ids).
    pub fn gauge(&self, wanted: &str) -> f64 {
        let value = self.0.gauges.lock().get(wanted).cloned();
        match value {
            Some(value) => f64::from_bits(value.load(Ordering::SeqCst)),
            None => panic!("{wanted}: not a registered gauge: {:?}", self.ids()),
        }
    }

    /// Every sample histogram `wanted` (an id) got so far.
    ///
    /// # Panics
    /// When no histogram has that id (the message lists the registered ids).
    pub fn histogram(&self, wanted: &str) -> Vec<f64> {
        let samples = self.0.histograms.lock().get(wanted).cloned();
        match samples {
            Some(samples) => samples.0.lock().clone(),
            None => panic!("{wanted}: not a registered histogram: {:?}", self.ids()),
        }
    }
}

impl Recorder for MetricsRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.0.counters.lock();
        Counter::from_arc(counters.entry(id(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.0.gauges.lock();
        Gauge::from_arc(gauges.entry(id(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.0.histograms.lock();
        Histogram::from_arc(histograms.entry(id(key)).or_default().clone())
    }
}
