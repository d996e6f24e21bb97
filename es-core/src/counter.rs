//! Counters reported both to the metrics recorder and to the figures code reads without one
//! ([`Kernel::stats`](crate::Kernel::stats), a runner's status). The kernel, the projection
//! runners and the process managers each own their metric handles (their `metrics` modules);
//! this is what they count with.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use metrics::Counter;

/// Slots of a [`Striped`] counter.
const STRIPES: usize = 8;

/// One slot of a striped counter, on its own cache line.
#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A counter that threads add to without sharing a cache line: each thread adds to its own
/// slot, and a read sums them. Wrapping, so a gauge can add and subtract.
#[derive(Default)]
pub(crate) struct Striped([Slot; STRIPES]);

/// This thread's slot of every [`Striped`] counter.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        self.0[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.0[stripe()].0.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(slot.0.load(Ordering::Relaxed))
        })
    }
}

/// A counter reported both to the recorder and to the figures read without one.
pub(crate) struct Count {
    handle: Counter,
    local: Striped,
}

impl Count {
    /// A count reported to `handle` as well.
    pub(crate) fn new(handle: Counter) -> Self {
        Self {
            handle,
            local: Striped::default(),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        if n > 0 {
            self.handle.increment(n);
            self.local.add(n);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.local.get()
    }
}
