//! A process manager's metric handles: the names it registers (label `process_manager`, and
//! `partition` for a partition of a partitioned one), taken when its runner starts.

use metrics::Gauge;

use crate::counter::Count;

/// Counter: events handled by a process manager's instances (label `process_manager`).
pub const EVENTS_HANDLED: &str = "es_process_events_handled_total";
/// Counter: commands a process manager sent (label `process_manager`; a command sent again
/// after an interruption counts again).
pub const COMMANDS_SENT: &str = "es_process_commands_sent_total";
/// Counter: commands of a process manager that were rejected (label `process_manager`).
pub const REJECTIONS: &str = "es_process_rejections_total";
/// Counter: deadlines of a process manager's instances that fell due and were handled (label
/// `process_manager`; one handled again after an interruption counts again).
pub const DEADLINES_FIRED: &str = "es_process_deadlines_fired_total";
/// Gauge: pending deadlines of a process manager's instances (label `process_manager`).
pub const DEADLINES_PENDING: &str = "es_process_deadlines_pending";
/// Gauge: live instances of a process manager (label `process_manager`).
pub const INSTANCES: &str = "es_process_instances";
/// Gauge: events in the log after a process manager's position (label `process_manager`).
pub const LAG_EVENTS: &str = "es_process_lag_events";

/// The metric handles of one runner, which also count for its status.
pub(crate) struct Metrics {
    pub(crate) events_handled: Count,
    pub(crate) commands_sent: Count,
    pub(crate) rejections: Count,
    pub(crate) deadlines_fired: Count,
    pub(crate) deadlines_pending: Gauge,
    pub(crate) instances: Gauge,
    pub(crate) lag_events: Gauge,
}

impl Metrics {
    /// Registers the metrics of process manager `name` with the recorder in force; those of a
    /// partition (`"i/n"`) also carry the label `partition`, so that partitions do not set
    /// one another's gauges.
    pub(crate) fn new(name: &'static str, partition: Option<String>) -> Self {
        let mut labels = vec![metrics::Label::new("process_manager", name)];
        if let Some(partition) = partition {
            labels.push(metrics::Label::new("partition", partition));
        }
        let counter = |metric: &'static str| Count::new(metrics::counter!(metric, labels.clone()));
        let gauge = |metric: &'static str| metrics::gauge!(metric, labels.clone());
        Self {
            events_handled: counter(EVENTS_HANDLED),
            commands_sent: counter(COMMANDS_SENT),
            rejections: counter(REJECTIONS),
            deadlines_fired: counter(DEADLINES_FIRED),
            deadlines_pending: gauge(DEADLINES_PENDING),
            instances: gauge(INSTANCES),
            lag_events: gauge(LAG_EVENTS),
        }
    }
}
