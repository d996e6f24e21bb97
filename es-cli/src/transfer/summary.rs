//! The one-line summary a transfer ends with.

use std::time::Instant;

use crate::context::Ctx;
use crate::error::CliResult;

/// Prints a one-line summary (to stdout, as JSON with --json).
pub(super) fn report(ctx: &mut Ctx, message: &str, events: u64, started: Instant) -> CliResult<()> {
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    };
    if ctx.json {
        ctx.out.json(&serde_json::json!({
            "message": message,
            "events": events,
            "seconds": secs,
            "events_per_second": rate.round(),
        }))
    } else {
        ctx.out
            .line(format!("{message} in {secs:.2} s ({:.0} events/s)", rate))
    }
}
