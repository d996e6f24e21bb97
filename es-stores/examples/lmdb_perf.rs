//! LmdbStore performance: the store-level workloads of BENCHMARKS.md, with the fsync baseline.
//!
//! ```text
//! cargo run --release -p es-stores --no-default-features --features lmdb --example lmdb_perf [runs]
//! ```
//!
//! Prints one JSON object per workload with the median (and every run) of `runs` runs (default
//! 3). The store lives in a temporary directory under `$LMDB_PERF_DIR` (default: the system
//! temporary directory); use a directory on the disk you want to measure.
#![allow(clippy::print_stdout)]

#[cfg(not(feature = "lmdb"))]
fn main() {
    eprintln!("lmdb_perf needs the `lmdb` feature");
}

#[cfg(feature = "lmdb")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    perf::main()
}

#[cfg(feature = "lmdb")]
mod perf {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
    use es_stores::LmdbStore;

    type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn base_dir() -> PathBuf {
        std::env::var_os("LMDB_PERF_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
    }

    fn tempdir() -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix("lmdb_perf")
            .tempdir_in(base_dir())?)
    }

    fn deposit() -> NewEvent {
        NewEvent::new("Deposited", br#"{"amount":1}"#.to_vec())
    }

    fn median(values: &mut [f64]) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    fn report(name: &str, unit: &str, runs: &mut [f64], extra: &str) {
        let all: Vec<String> = runs.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "{{\"workload\":\"{name}\",\"unit\":\"{unit}\",\"median\":{:.0},\"runs\":[{}]{extra}}}",
            median(runs),
            all.join(",")
        );
    }

    /// Median time of 100 `write(4 KiB) + fsync` on the store's file system, in microseconds.
    fn fsync_baseline(dir: &Path) -> Result<f64> {
        let mut file = std::fs::File::create(dir.join("fsync.probe"))?;
        let block = vec![7u8; 4096];
        let mut times = Vec::with_capacity(100);
        for _ in 0..100 {
            let started = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok(median(&mut times))
    }

    /// Median time of 100 `pwrite(4 KiB at offset 0) + fdatasync` (no file growth), in
    /// microseconds: closer to what an LMDB commit pays once its file stopped growing.
    fn fdatasync_overwrite(dir: &Path) -> Result<f64> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(dir.join("fdatasync.probe"))?;
        let block = vec![7u8; 4096];
        file.write_all_at(&block, 0)?;
        file.sync_all()?;
        let mut times = Vec::with_capacity(100);
        for _ in 0..100 {
            let started = Instant::now();
            file.write_all_at(&block, 0)?;
            file.sync_data()?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok(median(&mut times))
    }

    /// W7: `total` events appended in batches of `batch`, one append at a time; events/s.
    async fn w7(batch: usize, total: usize) -> Result<f64> {
        let dir = tempdir()?;
        let store = LmdbStore::open(dir.path())?;
        let streams: Vec<StreamId> = (0..100)
            .map(|i| StreamId::new("bank_account", format!("acc-{i}")))
            .collect();
        let events: Vec<NewEvent> = (0..batch).map(|_| deposit()).collect();
        let started = Instant::now();
        for i in 0..total / batch {
            store
                .append(
                    &streams[i % streams.len()],
                    ExpectedVersion::Any,
                    events.clone(),
                )
                .await?;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    /// W4 (store level): replay one stream of `len` events, page by page; events/s, cold open
    /// (the store is reopened before each replay), and the time of a small read, inline and on
    /// the blocking pool.
    async fn w4(len: u64, page: usize) -> Result<(f64, f64, f64, f64)> {
        let dir = tempdir()?;
        let stream = StreamId::new("bank_account", "hot");
        {
            let store = LmdbStore::open(dir.path())?;
            for chunk in 0..len / 1000 {
                store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(chunk * 1000),
                        (0..1000).map(|_| deposit()).collect(),
                    )
                    .await?;
                // Another stream interleaved, so the stream is not the whole log.
                store
                    .append(
                        &StreamId::new("bank_account", "other"),
                        ExpectedVersion::Any,
                        vec![deposit()],
                    )
                    .await?;
            }
        }
        let store = LmdbStore::open(dir.path())?;
        let started = Instant::now();
        let balance = es_core::store::fold_stream(&store, &stream, 1, page, 0u64, |n, e| {
            n + e.payload.len() as u64
        })
        .await?;
        let replay = len as f64 / started.elapsed().as_secs_f64();
        assert!(balance > 0);
        let started = Instant::now();
        let all = store.read_all(1, usize::MAX).await?;
        let scan = all.len() as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for i in 0..1000u64 {
            store.read_stream(&stream, 1 + i * 97, 10).await?;
        }
        let small_read_us = started.elapsed().as_secs_f64() * 1e6 / 1000.0;
        // The same small reads moved to the blocking pool, for comparison.
        let handle = tokio::runtime::Handle::current();
        let started = Instant::now();
        for i in 0..1000u64 {
            let (store, stream, handle) = (store.clone(), stream.clone(), handle.clone());
            tokio::task::spawn_blocking(move || {
                handle.block_on(async { store.read_stream(&stream, 1 + i * 97, 10).await })
            })
            .await??;
        }
        let blocking_read_us = started.elapsed().as_secs_f64() * 1e6 / 1000.0;
        Ok((replay, scan, small_read_us, blocking_read_us))
    }

    /// Concurrent small appends: `tasks` tasks, each appending one event at a time to its own
    /// stream, `per_task` times; appends/s.
    async fn concurrent(tasks: u64, per_task: u64) -> Result<f64> {
        let dir = tempdir()?;
        let store = LmdbStore::open(dir.path())?;
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let stream = StreamId::new("bank_account", format!("acc-{t}"));
                for i in 0..per_task {
                    store
                        .append(&stream, ExpectedVersion::Exact(i), vec![deposit()])
                        .await?;
                }
                Ok::<_, es_core::store::StoreError>(())
            }));
        }
        for handle in handles {
            handle.await??;
        }
        Ok((tasks * per_task) as f64 / started.elapsed().as_secs_f64())
    }

    pub(super) fn main() -> Result<()> {
        let runs: usize = std::env::args()
            .nth(1)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(3)
            .max(1);
        // An optional second argument runs only the workloads whose name starts with it.
        let only = std::env::args().nth(2).unwrap_or_default();
        let wants = |name: &str| name.starts_with(only.as_str());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let dir = tempdir()?;
        let mut fsync: Vec<f64> = (0..runs)
            .map(|_| fsync_baseline(dir.path()))
            .collect::<Result<_>>()?;
        report("fsync_4k_append", "us", &mut fsync, "");
        let mut overwrite: Vec<f64> = (0..runs)
            .map(|_| fdatasync_overwrite(dir.path()))
            .collect::<Result<_>>()?;
        report("fdatasync_4k_overwrite", "us", &mut overwrite, "");
        let fsync_us = median(&mut fsync);
        let extra = format!(",\"fsync_us\":{fsync_us:.0},\"durability\":\"durable\"");
        runtime.block_on(async {
            for (batch, total) in [(1000, 1_000_000), (100, 100_000), (1, 2_000)] {
                let name = format!("W7_batch_{batch}");
                if !wants(&name) {
                    continue;
                }
                let mut r = Vec::new();
                for _ in 0..runs {
                    r.push(w7(batch, total).await?);
                }
                report(&name, "events/s", &mut r, &extra);
            }

            let (mut replay, mut scan) = (Vec::new(), Vec::new());
            let (mut inline, mut blocking) = (Vec::new(), Vec::new());
            for _ in 0..if wants("W4") { runs } else { 0 } {
                let (a, b, c, d) = w4(100_000, 1000).await?;
                replay.push(a);
                scan.push(b);
                inline.push(c);
                blocking.push(d);
            }
            if !replay.is_empty() {
                report("W4_replay_100k_pages_1000", "events/s", &mut replay, "");
                report("read_all_scan", "events/s", &mut scan, "");
                for (name, values) in [
                    ("read_stream_10_events_inline", &mut inline),
                    ("read_stream_10_events_spawn_blocking", &mut blocking),
                ] {
                    let all: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
                    println!(
                        "{{\"workload\":\"{name}\",\"unit\":\"us\",\"median\":{:.1},\"runs\":[{}]}}",
                        median(values),
                        all.join(",")
                    );
                }
            }

            for tasks in [64u64, 1024] {
                if !wants("concurrent") {
                    continue;
                }
                let mut r = Vec::new();
                for _ in 0..runs {
                    r.push(concurrent(tasks, 64_000 / tasks).await?);
                }
                report(
                    &format!("concurrent_appends_{tasks}_tasks"),
                    "appends/s",
                    &mut r,
                    &extra,
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        })
    }
}
