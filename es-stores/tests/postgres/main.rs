//! PostgresStore: the conformance suite and the PostgreSQL-specific behaviour (migrations, the
//! gap problem, LISTEN/NOTIFY, error mapping, the bulk path, process-manager deadlines on two
//! nodes), one module per concern. Built only with the `postgres` feature; needs a server at
//! `ES_PG_URL`, and fails (naming the variable) without one. One test binary: the tests that
//! hold transactions open run alone among its tests (see `postgres_common::store_alone`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../erasure_common/mod.rs"]
mod erasure_common;
#[path = "../postgres_common/mod.rs"]
mod postgres_common;

mod appends;
mod batched_reads;
mod bulk;
mod conformance;
mod deadlines;
mod erasure;
mod errors;
mod gaps;
mod input;
mod leases;
mod metrics;
mod migrations;
mod round_trip;
mod subscribe;
