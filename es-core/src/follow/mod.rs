//! The log follower: what every runner that reads the global log in position order shares
//! (projection runners and process-manager runners).
//!
//! A runner is a [`Follow`] implementation, which keeps only its own part: how it handles a
//! page of events and what its checkpoint holds. [`spawn`] drives it with a follower, which
//! does the rest, once for both kinds:
//!
//! - the paged read of the log after the runner's position, with the runner's filter, so that
//!   events it does not want are skipped without being decoded;
//! - waiting at the head: woken by the store's `subscribe()`, with a polling fallback;
//! - one retry policy for store failures (`retry`): reads of the log, checkpoint loads and
//!   saves, and a process manager's commands, each tried [`STORE_ATTEMPTS`] times with backoff;
//! - the election of one active runner per name among processes sharing a checkpoint store
//!   (`election`): standing by, taking the lease over (and resuming from the checkpoint the
//!   previous holder saved), losing it (and saving nothing more);
//! - the stop signal, honoured while waiting and between pages, and what the runner's handles
//!   see of it ([`Progress`]: position, phase, standby, stop, `wait_for`).
//!
//! The modules depend on each other one way only: `follower` (the loop) uses `control` (what a
//! runner may ask for while it handles a page), which uses `election`, `progress` and `retry`,
//! and `pages` (the pages the partitions of one runner read once and share).

mod control;
mod election;
mod follower;
mod gate;
mod pages;
mod progress;
mod retry;

pub(crate) use control::Control;
pub(crate) use follower::{Alarm, Follow, Page, Plan, spawn};
pub(crate) use gate::ShareGate;
pub(crate) use pages::SharedPages;
pub use progress::ProjectionPhase;
pub(crate) use progress::{Ended, Progress};
pub(crate) use retry::{End, STORE_ATTEMPTS, backoff};
