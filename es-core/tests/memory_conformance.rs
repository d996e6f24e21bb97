//! The store conformance suite on `MemoryStore`.

use es_core::MemoryStore;

async fn memory() -> Option<(MemoryStore, ())> {
    Some((MemoryStore::new(), ()))
}

es_core::store_conformance_tests!(memory);
