//! The conformance suite of `es_core`, run on PostgreSQL.

use es_stores::PostgresStore;

use crate::postgres_common::{SchemaGuard, store};

/// The conformance factory: always a store (the suite's `None`, "skip", is never used: without a
/// reachable `ES_PG_URL` the case fails).
async fn conformance_store() -> Option<(PostgresStore, SchemaGuard)> {
    Some(store("conformance").await)
}

// Positions are transaction ids shifted left: they have holes, but no reader skips an event.
es_core::store_conformance_tests!(conformance_store, gapless = false);
