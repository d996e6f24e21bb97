//! A recording test recorder (`metrics-util`'s registry with atomic storage, read back without
//! resetting anything), made the thread's local recorder while a store is opened: the store
//! takes its handles then, and its writer threads report through them.
#![allow(dead_code)]

use std::sync::Arc;

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

impl TestRecorder {
    pub fn new() -> Self {
        Self(Arc::new(Registry::atomic()))
    }

    /// Every sample of histogram `name` with label `backend`; panics when it is not registered.
    pub fn histogram(&self, name: &str, backend: &str) -> Vec<f64> {
        let handles = self.0.get_histogram_handles();
        let found = handles.iter().find(|(key, _)| {
            key.name() == name
                && key
                    .labels()
                    .any(|l| l.key() == "backend" && l.value() == backend)
        });
        match found {
            Some((_, bucket)) => bucket.data(),
            None => panic!("{name}{{backend={backend}}} is not registered"),
        }
    }
}
