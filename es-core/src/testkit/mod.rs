//! Test support (feature `testkit`): a given/when/then helper for aggregates, a given/then
//! helper for projections, and the store
//! conformance suite every backend runs.

pub mod conformance;

mod aggregate;
mod projection;

pub use aggregate::{AggregateTest, Then};
pub use projection::{ProjectionTest, recorded};
