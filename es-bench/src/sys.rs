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
