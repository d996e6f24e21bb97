//! The bank-account domain of the design, shared by the `bank` example, the benchmark program
//! and the cross-crate tests.
//!
//! ```
//! use es_core::testkit::AggregateTest;
//! use es_examples::bank::*;
//!
//! AggregateTest::<BankAccount>::given([Deposited { amount: 100 }.into()])
//!     .when(Withdraw { amount: 1_000 })
//!     .then_expect_error_matches(|e| matches!(e, BankError::InsufficientFunds { .. }));
//! ```

pub mod bank;
pub mod cli;
pub mod evolution;
pub mod load;
