//! [`PostgresStore`]: events, snapshots and checkpoints in PostgreSQL, for several application
//! nodes sharing one store.
//!
//! The design (group commit, the gap problem, subscriptions, errors) is documented on
//! [`PostgresStore`]. The files, by concern:
//!
//! - `store`: the store type, its input checks and its [`EventStore`](es_core::store::EventStore)
//!   implementation;
//! - `options`: [`PostgresStoreBuilder`], connecting and starting a store (from a store URL too);
//! - `sql`: every SQL statement, one documented constant each;
//! - `writer`: group commit, each batch of appends in one statement; `lane`: the lane's loop,
//!   what goes in the next statement and when a second one starts beside it;
//! - `bulk`: `append_many`'s path, each statement of a batch one transaction with binary `COPY`;
//! - `read`: the read path and the decoding of rows;
//! - `snapshots`: snapshots;
//! - `delete`: removing events (truncation) and the removals recorded;
//! - `checkpoints`: projection checkpoints;
//! - `leases`: runner leases, held with session advisory locks;
//! - `admin`: what an operator tool reads beyond the store traits (checkpoint names, stream
//!   heads);
//! - `head`: the subscription head, kept current by polling and LISTEN/NOTIFY;
//! - `migrate`: the versioned schema migrations (`migrations/*.sql`);
//! - `error`: what a `sqlx` error means for the caller.

mod admin;
mod bulk;
mod checkpoints;
mod delete;
mod error;
mod head;
mod held;
mod keys;
mod lane;
mod leases;
mod migrate;
mod options;
mod read;
mod readers;
mod snapshots;
mod sql;
mod store;
mod writer;

pub use options::PostgresStoreBuilder;
pub use store::PostgresStore;
