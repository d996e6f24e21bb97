//! Test support (feature `testkit`): a given/when/then helper for aggregates, and the store
//! conformance suite every backend runs.

pub mod conformance;

mod aggregate;

pub use aggregate::{AggregateTest, Then};
