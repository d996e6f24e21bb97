//! A projection runner's metric handles: the names it registers, and what its lag is computed
//! from. `crate::metrics` re-exports the public names and documents them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Label};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::counter::Count;

/// Gauge: events in the log after a runner's position, label `projection`.
pub const PROJECTION_LAG_EVENTS: &str = "es_projection_lag_events";
/// Gauge: seconds since the oldest event a runner has not processed was recorded (0 when
/// caught up), label `projection`.
pub const PROJECTION_LAG_SECONDS: &str = "es_projection_lag_seconds";
/// Counter: events a projection handled, label `projection`.
pub const PROJECTION_EVENTS_HANDLED: &str = "es_projection_events_handled_total";
/// Counter: events a projection skipped, labels `projection` and `reason` (`filter`, `error`).
pub const PROJECTION_EVENTS_SKIPPED: &str = "es_projection_events_skipped_total";
/// Gauge: events parked in a projection's dead-letter queue (`ErrorPolicy::Park`), label
/// `projection`.
pub const DEAD_LETTERS: &str = "es_dead_letters";
/// Counter: runners started again under a name whose runner had stopped, label `projection`.
pub const PROJECTION_RESTARTS: &str = "es_projection_restarts_total";

/// The metrics of one projection, and what its lag is computed from. Taken when its runner is
/// first started on a kernel, and kept across restarts.
pub(crate) struct ProjectionMetrics {
    lag_events: Gauge,
    lag_seconds: Gauge,
    pub(crate) handled: Count,
    pub(crate) filtered: Count,
    pub(crate) error_skipped: Counter,
    pub(crate) restarts: Count,
    pub(crate) dead_letters: Gauge,
    /// The highest readable position of the log (the store's `subscribe`).
    head: watch::Receiver<u64>,
    /// The oldest event the runner knows it has not processed: its position and timestamp.
    pending: Mutex<Option<(u64, DateTime<Utc>)>>,
    /// The kernel's clock (which stamps the events).
    clock: Arc<dyn Clock>,
    /// The position the runner last computed its lag at (`None` before it did). Readers that
    /// refresh the gauges (a status, the lag monitor) compute at this position, under this
    /// lock: a reader holding an older position would otherwise overwrite the runner's figure
    /// just before the runner publishes its new position.
    at: Mutex<Option<u64>>,
}

/// A runner's lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lag {
    pub(crate) events: u64,
    pub(crate) time: Duration,
}

impl ProjectionMetrics {
    /// Registers the metrics of projection `name` with the recorder in force.
    /// `partition` (`"i/n"`) labels the metrics of one partition of a partitioned projection.
    pub(crate) fn new(
        name: &'static str,
        partition: Option<String>,
        head: watch::Receiver<u64>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut labels = vec![Label::new("projection", name)];
        if let Some(partition) = partition {
            labels.push(Label::new("partition", partition));
        }
        let with = |extra: Option<(&'static str, &'static str)>| {
            let mut labels = labels.clone();
            if let Some((key, value)) = extra {
                labels.push(Label::new(key, value));
            }
            labels
        };
        let counter = |metric: &'static str| metrics::counter!(metric, with(None));
        Self {
            lag_events: metrics::gauge!(PROJECTION_LAG_EVENTS, with(None)),
            lag_seconds: metrics::gauge!(PROJECTION_LAG_SECONDS, with(None)),
            handled: Count::new(counter(PROJECTION_EVENTS_HANDLED)),
            filtered: Count::new(metrics::counter!(
                PROJECTION_EVENTS_SKIPPED,
                with(Some(("reason", "filter")))
            )),
            error_skipped: metrics::counter!(
                PROJECTION_EVENTS_SKIPPED,
                with(Some(("reason", "error")))
            ),
            restarts: Count::new(counter(PROJECTION_RESTARTS)),
            dead_letters: metrics::gauge!(DEAD_LETTERS, with(None)),
            head,
            pending: Mutex::new(None),
            clock,
            at: Mutex::new(None),
        }
    }

    /// Notes the oldest event not yet processed that the runner has seen (the first one of
    /// the page it is about to process).
    pub(crate) fn note_pending(&self, position: u64, timestamp: DateTime<Utc>) {
        *self.pending.lock() = Some((position, timestamp));
    }

    /// Notes an event a reader of the log (the lag monitor) found after the position it read
    /// for the runner, unless the runner has seen a newer one meanwhile: a reader that read
    /// before the runner moved on would otherwise set an event the runner has already
    /// processed as the oldest pending one, and the lag in time would read zero while the
    /// runner is stuck behind.
    pub(crate) fn note_found(&self, position: u64, timestamp: DateTime<Utc>) {
        let at = self.at.lock();
        let mut pending = self.pending.lock();
        let processed = at.unwrap_or(0);
        let unknown = pending.is_none_or(|(seen, _)| seen <= processed);
        if unknown && position > processed {
            *pending = Some((position, timestamp));
        }
    }

    /// Whether the lag in time is unknown: the runner is behind, and the oldest event it
    /// has not processed was not seen yet.
    pub(crate) fn needs_pending(&self, processed: u64) -> bool {
        *self.head.borrow() > processed
            && self
                .pending
                .lock()
                .is_none_or(|(position, _)| position <= processed)
    }

    /// The lag of a runner at `processed`, also set on the gauges.
    ///
    /// In events: the log's head minus `processed`. In time (by the kernel's clock, which
    /// stamped the events): since the timestamp of the oldest event after `processed` the
    /// runner has seen; zero when it is caught up (an idle log is
    /// not lag), and zero while that event has not been seen yet (for at most a moment for a
    /// running runner; the kernel's lag monitor reads it for a stopped one within a second).
    pub(crate) fn lag(&self, processed: u64) -> Lag {
        let mut at = self.at.lock();
        *at = Some(processed);
        self.compute(processed)
    }

    /// The lag (also set on the gauges) at the position the runner last computed it at, or at
    /// `position` when it has not yet: what readers of the status and the lag monitor use.
    pub(crate) fn refresh(&self, position: u64) -> Lag {
        let at = self.at.lock();
        self.compute(at.unwrap_or(position))
    }

    /// [`Self::lag`] without recording the position.
    fn compute(&self, processed: u64) -> Lag {
        let head = *self.head.borrow();
        let events = head.saturating_sub(processed);
        let time = match *self.pending.lock() {
            Some((position, at)) if events > 0 && position > processed => {
                (self.clock.now() - at).to_std().unwrap_or(Duration::ZERO)
            }
            _ => Duration::ZERO,
        };
        self.lag_events.set(events as f64);
        self.lag_seconds.set(time.as_secs_f64());
        Lag { events, time }
    }
}

/// Shared handles of a projection's metrics.
pub(crate) type ProjectionMetricsRef = Arc<ProjectionMetrics>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    #[test]
    fn a_reader_with_an_older_position_does_not_overwrite_the_runners_lag() {
        let (head, rx) = watch::channel(4);
        let metrics = ProjectionMetrics::new("p", None, rx, Arc::new(SystemClock));
        // Before the runner computed any lag, a reader's position is used.
        assert_eq!(metrics.refresh(1).events, 3);
        // The runner handled up to 4; a reader that read the position as 3 just before it
        // was published refreshes at the runner's own.
        assert_eq!(metrics.lag(4).events, 0);
        assert_eq!(metrics.refresh(3).events, 0);
        head.send_replace(6);
        assert_eq!(metrics.refresh(3).events, 2);
        // A reset moves the runner back: that is its figure from then on.
        assert_eq!(metrics.lag(0).events, 6);
        assert_eq!(metrics.refresh(5).events, 6);
    }

    #[test]
    fn a_monitor_that_read_before_the_runner_moved_on_does_not_hide_its_lag() {
        let (head, rx) = watch::channel(3);
        let metrics = ProjectionMetrics::new("p", None, rx, Arc::new(SystemClock));
        let old = Utc::now() - chrono::Duration::seconds(10);
        // The monitor read event 1 while the runner was at 0; meanwhile the runner handled
        // 1 and is stuck on 2.
        metrics.note_pending(1, old);
        metrics.lag(1);
        metrics.note_pending(2, old);
        metrics.note_found(1, old);
        assert!(metrics.refresh(0).time >= Duration::from_secs(10));
        // A found event counts when the runner has not seen one past its position.
        metrics.lag(2);
        metrics.note_found(3, old);
        assert!(metrics.refresh(0).time >= Duration::from_secs(10));
        // An event at or before the runner's position is never the pending one.
        head.send_replace(4);
        metrics.lag(3);
        metrics.note_found(3, old);
        assert_eq!(metrics.refresh(0).time, Duration::ZERO);
    }
}
