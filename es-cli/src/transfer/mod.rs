//! `export`, `import` and `copy`: moving events between stores and files, page by page.
//!
//! Writes go through a [`Pipeline`](pipeline::Pipeline): runs of consecutive events of one
//! stream become one append, appends are gathered into batches of about `BATCH_EVENTS` events
//! (`BATCH_EVENTS_POSTGRES` into PostgreSQL) written with one
//! [`EventStore::append_many`](es_core::store::EventStore::append_many) (one commit on the
//! file, LMDB and PostgreSQL stores), and up to `BATCHES_IN_FLIGHT` batches are in flight at
//! once, each queued at the store before the next is made, so the target commits them in the
//! source's order. Every append expects the stream at the version the source had before the
//! event, so a rerun can never write an event twice, and every answer is checked to have
//! landed after the previous one in the target's log.
//!
//! The files: `export.rs`, `import.rs` and `copy.rs` (one command each), `source.rs` (reading
//! the source a page ahead), `pipeline.rs` (writing the target) and `summary.rs` (the line a
//! command ends with).

mod copy;
mod export;
mod import;
mod pipeline;
mod source;
mod summary;

pub(crate) use copy::{CopyOptions, copy};
pub(crate) use export::export;
pub(crate) use import::import;
