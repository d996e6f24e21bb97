//! [`Truncation`]: what a store records about the events it removed (kept apart from
//! `lifecycle`, which the store traits do not depend on).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::StreamId;

/// What a store recorded about the events it removed from one stream: all events before
/// sequence `before` are gone. (The file store records first and removes after, and finishes
/// a removal interrupted by a crash when it is next opened: a tool reading its files in
/// between may still meet some of the events.) `es verify` reads these to tell a removal from
/// lost data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// The stream.
    pub stream: StreamId,
    /// Events with a lower sequence were removed; the first kept event has this sequence.
    pub before: u64,
    /// When the latest removal was made.
    pub at: DateTime<Utc>,
}
