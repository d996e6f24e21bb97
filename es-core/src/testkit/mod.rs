//! Test support (feature `testkit`): given/when/then helpers for aggregates and process
//! managers, and the store
//! conformance suite every backend runs.

pub mod conformance;

mod aggregate;
mod process;

pub use aggregate::{AggregateTest, Then};
pub use process::{ExpectedCommand, ProcessTest, ProcessThen, expect_command, recorded};
