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
//!
//! Runners that wait for a time of the clock (a process manager's deadlines) wait through
//! [`Clock::sleep_until`]: real time for the system clock, and until a test moves it for a
//! [`ManualClock`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use parking_lot::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// A future that completes when the clock may have reached `t`: the caller reads
    /// [`Clock::now`] again and waits anew if it has not. The default sleeps in real time until
    /// `t`, at most [`MAX_SLEEP`] at once (so a clock set forward is noticed within that time);
    /// a clock that moves otherwise (such as [`ManualClock`]) wakes its sleepers when it moves.
    /// Needs a tokio runtime with time enabled.
    fn sleep_until(&self, t: DateTime<Utc>) -> ClockSleep {
        let wait = (t - self.now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait.min(MAX_SLEEP)))
    }
}

/// What [`Clock::sleep_until`] returns.
pub type ClockSleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The longest real-time sleep of the default [`Clock::sleep_until`].
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The system's wall clock: the time [`Utc::now`] gives.
///
/// Read once per committed batch, so it is made cheap: the calendar date of the current day is
/// kept per thread, and only the time of day is computed on each call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => utc_at(since.as_secs(), since.subsec_nanos()),
            Err(_) => Utc::now(),
        }
    }
}

/// The UTC time `secs` seconds and `nanos` nanoseconds after the Unix epoch, with the date of
/// the day computed once per day and thread.
fn utc_at(secs: u64, nanos: u32) -> DateTime<Utc> {
    thread_local! {
        static DAY: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
    }
    let day = secs / 86_400;
    let date = DAY.with(|cached| match cached.get() {
        Some((d, date)) if d == day => Some(date),
        _ => {
            let date = i32::try_from(day)
                .ok()
                .and_then(|d| d.checked_add(UNIX_EPOCH_DAYS_FROM_CE))
                .and_then(NaiveDate::from_num_days_from_ce_opt);
            if let Some(date) = date {
                cached.set(Some((day, date)));
            }
            date
        }
    });
    // Seconds of the day are below 86,400: they fit in u32.
    let time = NaiveTime::from_num_seconds_from_midnight_opt((secs % 86_400) as u32, nanos);
    match (date, time) {
        (Some(date), Some(time)) => NaiveDateTime::new(date, time).and_utc(),
        // Out of chrono's range: let chrono say what it makes of it.
        _ => Utc::now(),
    }
}

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A clock that only moves when told to. Clones share one time, so a test keeps a clone and
/// moves the time the kernel sees; a move wakes whoever waits for a time of it
/// ([`Clock::sleep_until`]), however far it jumps.
///
/// ```
/// use std::time::Duration;
/// use chrono::{DateTime, Utc};
/// use es_core::clock::{Clock, ManualClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
/// let due = clock.now() + chrono::Duration::seconds(30);
/// let waiter = tokio::spawn(clock.sleep_until(due));
/// clock.advance(Duration::from_secs(3_600)); // one jump: the sleeper wakes once
/// waiter.await.unwrap();
/// assert!(clock.now() >= due);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    /// Tells sleepers that the time moved.
    moved: Arc<tokio::sync::watch::Sender<()>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::new(tokio::sync::watch::Sender::new(())),
        }
    }

    /// Moves the time forward by `by` (saturating at the largest time chrono can represent).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        let step = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        *now = now
            .checked_add_signed(step)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        drop(now);
        self.moved.send_replace(());
    }

    /// Sets the time to `t` (it may go backwards: a test decides).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock() = t;
        self.moved.send_replace(());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }

    /// Completes once the time was set to `t` or later; it never sleeps in real time.
    fn sleep_until(&self, t: DateTime<Utc>) -> ClockSleep {
        let clock = self.clone();
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            while clock.now() < t {
                // The sender lives as long as `clock`: `changed` cannot fail here.
                if moved.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> ClockSleep {
        (**self).sleep_until(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_at_agrees_with_chrono_across_days_and_back() {
        let mut times: Vec<(u64, u32)> = vec![
            (0, 0),
            (86_399, 999_999_999),
            (86_400, 0),
            (951_782_400, 5), // 2000-02-29
            (1_764_000_123, 456_000_000),
            (4_102_444_799, 1), // 2099-12-31T23:59:59
            (86_400, 1),        // back to an earlier day: the cached date must not be reused
        ];
        times.extend((0..5_000u64).map(|i| (1_700_000_000 + i * 3_607, (i * 7_919) as u32)));
        for (secs, nanos) in times {
            let expected = DateTime::from_timestamp(secs as i64, nanos);
            assert_eq!(Some(utc_at(secs, nanos)), expected, "{secs}.{nanos}");
        }
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        for _ in 0..1_000 {
            let before = Utc::now();
            let now = SystemClock.now();
            let after = Utc::now();
            assert!(
                before <= now && now <= after,
                "{before} <= {now} <= {after}"
            );
        }
    }
}
