//! The one retry policy of every runner for store failures: reading the log, loading and
//! saving checkpoints, and (for a process manager) the commands it sends. A failure is tried
//! again after a backoff ([`backoff`]) until [`STORE_ATTEMPTS`] attempts failed, or a stop is
//! requested during a wait; then the runner stops and says why ([`End`]).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::StoreError;

/// How many times a runner tries a store operation before it stops.
pub(crate) const STORE_ATTEMPTS: u32 = 10;

/// Why a runner's loop ended.
#[derive(Debug)]
pub(crate) enum End {
    /// A stop was requested.
    Stopped,
    /// It failed; the message says where and why.
    Failed(String),
}

/// The wait before retry number `failures + 1`: 20 ms doubling, at most 5 s.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << failures.min(10))).min(Duration::from_secs(5))
}

/// Sleeps `wait`, cut short by a stop; returns whether a stop was requested. Every runner
/// waits through it between retries.
pub(crate) async fn pause_unless_stopped(stop: &watch::Receiver<bool>, wait: Duration) -> bool {
    let mut watching = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = watching.wait_for(|s| *s) => return true,
    }
    *stop.borrow()
}

/// Runs the store operation `attempt` until it succeeds, under the policy of the module docs.
/// `what` names the operation for the log and the error (`"saving the checkpoint at 7"`);
/// `runner` names the runner.
pub(crate) async fn retrying<T, F>(
    runner: &str,
    what: impl Fn() -> String,
    stop: &watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> Result<T, End>
where
    F: Future<Output = Result<T, StoreError>>,
{
    let mut failures = 0u32;
    loop {
        let error = match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        failures += 1;
        if failures >= STORE_ATTEMPTS {
            return Err(End::Failed(format!(
                "{}: {error} (after {failures} attempts)",
                what()
            )));
        }
        tracing::warn!(runner, error = %error, "{} failed; retrying", what());
        if pause_unless_stopped(stop, backoff(failures)).await {
            return Err(End::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{STORE_ATTEMPTS, backoff};

    #[test]
    fn the_backoff_doubles_from_20_ms_up_to_5_s() {
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(2), Duration::from_millis(40));
        assert_eq!(backoff(STORE_ATTEMPTS), Duration::from_secs(5));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(5));
    }
}
