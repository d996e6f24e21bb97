//! Erasure by crypto-shredding: personal data in events and snapshots is stored encrypted per
//! subject, and forgetting a subject deletes its key.
//!
//! Mark the fields with `#[pii(subject = ..)]` (on `#[derive(Event)]` types, and on aggregate
//! states with `#[derive(Pii)]` so that snapshots hold them encrypted too). The kernel seals each
//! such field with its subject's AES-256-GCM key before anything reaches a store (a random
//! 96-bit nonce per value; the subject, the field and the key id as associated data), so the
//! plaintext is never written anywhere: not in the log, not in snapshots, not in a copy.
//! Reads through the kernel (rehydration, projections, process managers) get the plaintext
//! back while the key exists.
//!
//! [`Kernel::forget`](crate::Kernel::forget) (and `es forget SUBJECT`) deletes the subject's
//! key, then writes an [`ErasureRecord`](crate::store::ErasureRecord) (who, when, which subject). From then on every read of
//! those fields yields the field's declared replacement (`redacted = expr`, by default
//! `Default::default()`) and nothing fails to decode. Live aggregates are stopped so that none
//! keeps the plaintext in memory; snapshots need no rewrite, as their fields were encrypted
//! with the same key (they read back redacted, like the events).
//!
//! The stored form of a field is described in [`format`](mod@format). Keys live in each backend's
//! [`KeyStore`](crate::store::KeyStore), apart from the events (memory; a `keys/` directory for the file and LMDB
//! stores; the `es_keys` table for PostgreSQL). The kernel caches keys for
//! [`DEFAULT_KEY_CACHE_TTL`] (set with
//! [`KernelBuilder::key_cache_ttl`](crate::KernelBuilder::key_cache_ttl)): a `forget` through the
//! kernel takes effect in it at once, one made elsewhere (another node sharing a PostgreSQL
//! store, the CLI) within that time. Use opaque ids as subjects: they are stored in clear.
//!
//! ```
//! use es_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Register { pub email: String }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! pub struct Registered {
//!     pub customer: String,
//!     #[pii(subject = customer, redacted = "<erased>".to_owned())]
//!     pub email: String,
//! }
//!
//! #[derive(Debug, Default, Clone, Serialize, Deserialize, Pii)]
//! pub struct Customer {
//!     pub id: String,
//!     #[pii(subject = id)]
//!     pub email: String,
//! }
//!
//! #[aggregate(name = "customer")]
//! impl Customer {
//!     #[command]
//!     fn register(&self, c: Register) -> Result<Registered, std::convert::Infallible> {
//!         Ok(Registered { customer: "c-1".into(), email: c.email })
//!     }
//!     #[apply]
//!     fn registered(&mut self, e: &Registered) {
//!         self.id = e.customer.clone();
//!         self.email = e.email.clone();
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let kernel = Kernel::builder().store(store.clone()).register::<Customer>().build()?;
//! kernel.dispatch::<Customer>("c-1", Register { email: "ada@example.com".into() }).await?;
//! assert_eq!(kernel.state::<Customer>("c-1").await?.email, "ada@example.com");
//! // The store holds ciphertext only.
//! let stored = store.read_all(1, 10).await?;
//! assert!(!String::from_utf8_lossy(&stored[0].payload).contains("ada@example.com"));
//!
//! let record = kernel.forget("c-1").await?;
//! assert!(record.key_deleted);
//! assert_eq!(kernel.state::<Customer>("c-1").await?.email, "<erased>");
//! # kernel.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod cache;
mod cipher;
pub mod format;
mod layer;
mod pii;
pub(crate) mod stores;

pub use cipher::OpenError;
pub use format::{FORMAT_VERSION, FormatError, MARKER, PiiValue};
pub use layer::{DEFAULT_KEY_CACHE_TTL, ErasureLayer};
pub use pii::{PiiField, PiiFields, PiiSubject, Redactable, encode_open, redacted_json};

#[doc(hidden)]
pub use pii::probe as __probe;
