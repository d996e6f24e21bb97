//! Run results, their medians over repeated runs, and progress bars.

use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Number, Value, json};

/// What one run of a workload measured.
#[derive(Debug, Default)]
pub struct RunResult {
    /// The figures docs/benchmarks.md names for the workload (numbers, possibly nested).
    pub figures: Map<String, Value>,
    /// Correctness violations (the program exits non-zero when there are any).
    pub violations: Vec<String>,
    /// Remarks on how the run was done (caps, concurrency chosen, ...).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Sets a figure.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.insert(key.to_owned(), value.into());
    }

    /// Records a violation unless `ok`.
    pub fn check(&mut self, ok: bool, violation: impl FnOnce() -> String) {
        if !ok {
            self.violations.push(violation());
        }
    }
}

/// Events or commands per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

/// Milliseconds with microsecond resolution.
pub fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1e6).round() / 1e3
}

/// An empty latency histogram in microseconds (1 µs to 10 min, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; fall back to an auto-resizing one.
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

fn unreachable_histogram() -> Histogram<u64> {
    // `Histogram::new(3)` only fails for more than 5 significant digits.
    match Histogram::new(2) {
        Ok(h) => h,
        Err(e) => unreachable!("hdrhistogram refuses 2 significant digits: {e}"),
    }
}

/// p50, p99, p99.9 and max of a latency histogram, as JSON (microseconds).
pub fn latency_json(h: &Histogram<u64>) -> Value {
    json!({
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "mean_us": h.mean().round(),
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:>28} [{bar:32}] {human_pos}/{human_len} {per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(message.to_owned());
    bar
}

/// The median of several runs' values: numbers by median, objects key by key, anything else
/// from the first run.
pub fn median_value(samples: &[&Value]) -> Value {
    let Some(first) = samples.first() else {
        return Value::Null;
    };
    match first {
        Value::Number(_) if samples.iter().all(|v| v.is_number()) => {
            let integral = samples.iter().all(|v| v.is_u64());
            let mut xs: Vec<f64> = samples.iter().filter_map(|v| v.as_f64()).collect();
            xs.sort_by(f64::total_cmp);
            let n = xs.len();
            let m = if n % 2 == 1 {
                xs[n / 2]
            } else {
                (xs[n / 2 - 1] + xs[n / 2]) / 2.0
            };
            if integral && m.fract() == 0.0 && m >= 0.0 {
                Value::Number(Number::from(m as u64))
            } else {
                Number::from_f64(m).map_or(Value::Null, Value::Number)
            }
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let column: Vec<&Value> = samples.iter().filter_map(|s| s.get(key)).collect();
                let merged = if column.len() == samples.len() {
                    median_value(&column)
                } else {
                    value.clone()
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        other => (*other).clone(),
    }
}

/// Formats a number with thousands separators for the human-readable line.
pub fn human(value: Option<&Value>) -> String {
    let Some(v) = value.and_then(Value::as_f64) else {
        return "-".to_owned();
    };
    if v.fract() != 0.0 && v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let digits = format!("{}", v.round() as i64);
    let (sign, digits) = digits
        .strip_prefix('-')
        .map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_taken_key_by_key() {
        let a = json!({"x": 1, "y": {"z": 10.0}, "s": "a"});
        let b = json!({"x": 3, "y": {"z": 30.0}, "s": "b"});
        let c = json!({"x": 2, "y": {"z": 20.0}, "s": "c"});
        let m = median_value(&[&a, &b, &c]);
        assert_eq!(m, json!({"x": 2, "y": {"z": 20.0}, "s": "a"}));
    }

    #[test]
    fn humans_read_thousands() {
        assert_eq!(human(Some(&json!(1234567))), "1,234,567");
        assert_eq!(human(Some(&json!(12.5))), "12.50");
        assert_eq!(human(None), "-");
    }
}
