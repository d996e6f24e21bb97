//! What the program measures about the machine: RSS, load average, the fsync baseline; and
//! the library's log on stderr when asked for.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::error::BenchError;

/// The page size `/proc/self/statm` counts in (4 KiB on the Linux targets this runs on).
const PAGE_SIZE: u64 = 4096;

/// The process's resident set size in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Result<u64, BenchError> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| BenchError::io("read /proc/self/statm", e))?;
    let resident = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse::<u64>().ok())
        .ok_or_else(|| {
            BenchError::io(
                "parse /proc/self/statm",
                std::io::Error::other(format!("unexpected content {statm:?}")),
            )
        })?;
    Ok(resident * PAGE_SIZE)
}

/// The 1-minute load average, when `/proc/loadavg` is readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The number of CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Median, 10th and 90th percentile of `samples` fsyncs of 4 KiB written in `dir`, in
/// microseconds, as JSON.
pub fn fsync_baseline(dir: &Path, samples: usize) -> Result<Value, BenchError> {
    let path = dir.join(".es-bench-fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| BenchError::io(format!("create {}", path.display()), e))?;
    let block = [0x5au8; 4096];
    let mut micros = Vec::with_capacity(samples);
    for i in 0..samples {
        // Alternate between two blocks so that every fsync has fresh data to write.
        let offset = (i % 2) as u64 * 4096;
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(&block))
            .map_err(|e| BenchError::io(format!("write {}", path.display()), e))?;
        let start = Instant::now();
        file.sync_all()
            .map_err(|e| BenchError::io(format!("fsync {}", path.display()), e))?;
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(&path)
        .map_err(|e| BenchError::io(format!("remove {}", path.display()), e))?;
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    Ok(json!({
        "samples": samples,
        "median_us": at(0.5).round(),
        "p10_us": at(0.1).round(),
        "p90_us": at(0.9).round(),
        "dir": dir.display().to_string(),
    }))
}

/// Writes the library's log (leases taken and given up, retries) to stderr when the environment
/// variable `ES_BENCH_LOG` holds an `EnvFilter` directive (such as `es_core=info`); off by
/// default, so it costs nothing.
pub fn init_log() {
    if let Ok(filter) = std::env::var("ES_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Runs `work` as a task of a new multi-threaded tokio runtime and returns its outcome, or exit
/// status 2 when the runtime cannot start (said on stderr, after `program`). The work runs in a
/// task, not on the thread that blocks on the runtime: the benchmark's clients then share the
/// worker threads with the actors, as in an application, instead of paying a cross-thread
/// wake-up for every command.
pub fn run_task<T: Send + 'static>(
    program: &str,
    work: impl std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
) -> Result<Result<T, BenchError>, std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("{program}: cannot start the tokio runtime: {e}");
            std::process::ExitCode::from(2)
        })?;
    Ok(runtime.block_on(async move {
        tokio::spawn(work)
            .await
            .unwrap_or_else(|e| Err(BenchError::from(e)))
    }))
}

/// One thread's scheduler counters, from `/proc/self/task/TID/schedstat` (nanoseconds).
#[derive(Clone, Copy, Default)]
struct Counters {
    /// Time on a CPU.
    cpu_ns: u64,
    /// Time runnable but waiting for a CPU (on the run queue).
    waiting_ns: u64,
    /// Times it was put on a CPU.
    slices: u64,
}

/// The scheduler counters of every thread of the process at one moment, by thread id, with
/// each thread's name (see [`ThreadTimes::figures_since`]). Empty where `/proc` or schedstats are not
/// available.
pub struct ThreadTimes {
    /// When the counters were read.
    at: Instant,
    threads: Vec<(u32, String, Counters)>,
}

impl ThreadTimes {
    /// Reads the counters of the process's threads now.
    pub fn now() -> Self {
        let at = Instant::now();
        let mut threads = Vec::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                    continue;
                };
                let dir = task.path();
                let name = std::fs::read_to_string(dir.join("comm"))
                    .map(|n| n.trim_end().to_owned())
                    .unwrap_or_default();
                let Some(counters) = std::fs::read_to_string(dir.join("schedstat"))
                    .ok()
                    .and_then(|s| parse_schedstat(&s))
                else {
                    continue;
                };
                threads.push((tid, name, counters));
            }
        }
        Self { at, threads }
    }

    /// What the threads did between the reading `before` and this one, as figures of a result: `threads`, per thread name `threads` (how many), `cpu_ms` (time on a CPU),
    /// `waiting_for_cpu_ms` (runnable but waiting for a CPU) and `slices` (times put on a CPU);
    /// and `cpu_busy`, the share of the machine's CPUs they used (1.0: every CPU busy all
    /// along). None when nothing could be read. A thread started after `before` counts from its
    /// start.
    pub fn figures_since(&self, before: &ThreadTimes) -> Vec<(&'static str, Value)> {
        let mut by_name: std::collections::BTreeMap<&str, (u64, Counters)> = Default::default();
        for (tid, name, now) in &self.threads {
            let then = before
                .threads
                .iter()
                .find(|(t, _, _)| t == tid)
                .map(|(_, _, c)| *c)
                .unwrap_or_default();
            let entry = by_name.entry(name).or_default();
            entry.0 += 1;
            entry.1.cpu_ns += now.cpu_ns.saturating_sub(then.cpu_ns);
            entry.1.waiting_ns += now.waiting_ns.saturating_sub(then.waiting_ns);
            entry.1.slices += now.slices.saturating_sub(then.slices);
        }
        if by_name.is_empty() {
            return Vec::new();
        }
        let mut figures = Vec::with_capacity(2);
        let cpu_ns: u64 = by_name.values().map(|(_, c)| c.cpu_ns).sum();
        let elapsed = self.at.saturating_duration_since(before.at);
        let available_ns = elapsed.as_secs_f64() * 1e9 * cpus() as f64;
        if available_ns > 0.0 {
            let busy = (cpu_ns as f64 / available_ns * 1000.0).round() / 1000.0;
            figures.push(("cpu_busy", busy.into()));
        }
        let ms = |ns: u64| (ns as f64 / 1e5).round() / 10.0;
        let threads = by_name
            .into_iter()
            .map(|(name, (count, c))| {
                let figures = json!({
                    "threads": count,
                    "cpu_ms": ms(c.cpu_ns),
                    "waiting_for_cpu_ms": ms(c.waiting_ns),
                    "slices": c.slices,
                });
                (name.to_owned(), figures)
            })
            .collect();
        figures.push(("threads", Value::Object(threads)));
        figures
    }
}

/// The three numbers of a `schedstat` line.
fn parse_schedstat(line: &str) -> Option<Counters> {
    let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(Counters {
        cpu_ns: fields.next()??,
        waiting_ns: fields.next()??,
        slices: fields.next()??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines_parse_and_bad_ones_do_not() {
        let c = parse_schedstat("457504064 367037707 2917\n");
        assert_eq!(
            c.map(|c| (c.cpu_ns, c.waiting_ns, c.slices)),
            Some((457_504_064, 367_037_707, 2917))
        );
        assert!(parse_schedstat("12 x 3").is_none());
        assert!(parse_schedstat("12 3").is_none());
    }

    #[test]
    fn thread_times_are_summed_by_name_over_the_interval() {
        let c = |cpu_ns, waiting_ns, slices| Counters {
            cpu_ns,
            waiting_ns,
            slices,
        };
        let at = Instant::now();
        let before = ThreadTimes {
            at,
            threads: vec![
                (1, "worker".into(), c(1_000_000, 0, 1)),
                (2, "worker".into(), c(2_000_000, 500_000, 2)),
            ],
        };
        let after = ThreadTimes {
            at: at + std::time::Duration::from_secs(1),
            threads: vec![
                (1, "worker".into(), c(3_000_000, 1_000_000, 4)),
                (2, "worker".into(), c(2_500_000, 500_000, 3)),
                (7, "writer".into(), c(4_000_000, 2_000_000, 9)),
            ],
        };
        let figures: serde_json::Map<String, Value> = after
            .figures_since(&before)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let v = &figures["threads"];
        assert_eq!(v["worker"]["threads"], 2);
        assert_eq!(v["worker"]["cpu_ms"], 2.5);
        assert_eq!(v["worker"]["waiting_for_cpu_ms"], 1.0);
        assert_eq!(v["worker"]["slices"], 4);
        assert_eq!(
            v["writer"]["cpu_ms"], 4.0,
            "a thread started since counts whole"
        );
        // 6.5 ms of CPU over one second of all the machine's CPUs.
        let busy = (6.5e-3 / cpus() as f64 * 1000.0).round() / 1000.0;
        assert_eq!(figures["cpu_busy"], busy);
        let none = ThreadTimes {
            at: after.at,
            threads: vec![],
        };
        assert!(none.figures_since(&before).is_empty());
    }

    #[test]
    fn this_process_has_readable_thread_times_on_linux() {
        let before = ThreadTimes::now();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {
            std::hint::black_box(0);
        }
        let figures = ThreadTimes::now().figures_since(&before);
        if std::path::Path::new("/proc/self/schedstat").exists() {
            let v = figures
                .into_iter()
                .find_map(|(k, v)| (k == "threads").then_some(v))
                .unwrap_or_default();
            let cpu: f64 = v
                .as_object()
                .map(|o| o.values().filter_map(|t| t["cpu_ms"].as_f64()).sum())
                .unwrap_or_default();
            assert!(cpu >= 10.0, "20 ms of spinning shows as CPU time: {v}");
        }
    }
}
