//! Time as the kernel sees it: an injectable [`Clock`] (the seed's `now_fun`).
//!
//! The kernel stamps every event and snapshot with its clock's `now()`; stores keep a given
//! timestamp verbatim. [`SystemClock`] (the default) reads the system time; [`ManualClock`] is a
//! shared, settable time for deterministic tests.
//!
//! ```
//! use std::time::Duration;
//! use chrono::{TimeZone, Utc};
//! use es_core::clock::{Clock, ManualClock};
//!
//! let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
//! let clock = ManualClock::new(start);
//! let shared = clock.clone(); // clones share one time
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(shared.now(), Utc.with_ymd_and_hms(2020, 1, 1, 0, 1, 0).unwrap());
//! clock.set(start);
//! assert_eq!(shared.now(), start);
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock: [`Utc::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share one time, so a test keeps a clone and
/// moves the time the kernel sees.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the time forward by `by` (saturating at the largest time chrono can represent).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        let step = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        *now = now
            .checked_add_signed(step)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    /// Sets the time to `t` (it may go backwards: a test decides).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock() = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}
