//! Test support (feature `testkit`): given/when/then helpers for aggregates, projections and
//! process managers, a recorder that keeps every metric ([`MetricsRecorder`]), and the store
//! conformance suite every backend runs.

pub mod conformance;

mod aggregate;
mod process;
mod projection;
mod recorder;

pub use aggregate::{AggregateTest, Then};
pub use process::{ExpectedCommand, ProcessTest, ProcessThen, correlated, expect_command};
pub use projection::{ProjectionTest, recorded};
pub use recorder::MetricsRecorder;
