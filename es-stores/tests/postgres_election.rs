//! One active projection runner per name among kernels sharing a PostgreSQL store (an advisory
//! lock held by a connection): the others stand by, report it in their status, are not caught
//! up, and take over from the last checkpoint when the active one's process dies or its kernel
//! shuts down.
//!
//! Built only with the `postgres` feature; fails without a server at `ES_PG_URL`. The
//! two-process test re-invokes this test binary as its children (`ES_ELECTION_CHILD`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod postgres_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::projection::{ProjectionHandle, ProjectionPhase};
use es_core::store::{CheckpointStore, Lease};
use es_stores::PostgresStore;
use postgres_common::{SchemaGuard, pg_url, pool};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
struct Tick {
    n: u64,
}

/// A projection whose state (persisted with its checkpoint) lists the positions it handled.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tally {
    positions: Vec<u64>,
}

#[projection(name = "tally")]
impl Tally {
    #[on]
    fn tick(&mut self, e: &Recorded<Tick>) {
        self.positions.push(e.position);
    }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::builder(pool(url, 4).await)
        .schema(schema.to_owned())
        .build()
        .await
        .expect("cannot build the store")
}

/// Appends `count` ticks, `per_append` per append, each append to a stream of its own.
async fn append_ticks(store: &PostgresStore, first: u64, count: u64, per_append: u64) {
    let mut n = first;
    while n < first + count {
        let events: Vec<NewEvent> = (n..(n + per_append).min(first + count))
            .map(|i| NewEvent::new(Tick::NAME, serde_json::to_vec(&Tick { n: i }).unwrap()))
            .collect();
        let len = events.len() as u64;
        store
            .append(
                &StreamId::new("ticker", format!("t-{n}")),
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .unwrap();
        n += len;
    }
}

/// Every position in the log, in order.
async fn log_positions(store: &PostgresStore) -> Vec<u64> {
    store
        .read_all(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect()
}

fn kernel(store: PostgresStore) -> Kernel {
    Kernel::builder().store(store).build().unwrap()
}

/// Polls `check` every 20 ms until it holds; `None` after `limit`.
fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A kernel on `rt` with its own pool on `schema`, running `Tally` with `options`.
fn start(
    rt: &tokio::runtime::Runtime,
    url: &str,
    schema: &str,
    options: ProjectionOptions,
) -> (Kernel, ProjectionHandle<Tally>, PostgresStore) {
    rt.block_on(async {
        let store = open(url, schema).await;
        let kernel = kernel(store.clone());
        let handle: ProjectionHandle<Tally> = kernel.projections().start(options).await.unwrap();
        (kernel, handle, store)
    })
}

/// Waits (30 s at most, else fails with `what`) until `handle`'s runner has handled the log up
/// to `head`.
fn wait_until_handled(
    rt: &tokio::runtime::Runtime,
    handle: &ProjectionHandle<Tally>,
    head: u64,
    what: &str,
) {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), handle.wait_for(head))
            .await
            .expect(what)
            .unwrap();
    });
}

/// Appends ticks `(first, count, per_append)` (see [`append_ticks`]) through `store`, waits
/// until `handle` handled them (else fails with `what`), and returns the log's positions.
fn append_and_follow(
    rt: &tokio::runtime::Runtime,
    store: &PostgresStore,
    handle: &ProjectionHandle<Tally>,
    (first, count, per_append): (u64, u64, u64),
    what: &str,
) -> Vec<u64> {
    rt.block_on(append_ticks(store, first, count, per_append));
    let log = rt.block_on(log_positions(store));
    wait_until_handled(rt, handle, log.last().copied().unwrap_or(0), what);
    log
}

/// Each of `positions` exactly once, in order.
fn assert_each_once(state: &Tally, positions: &[u64], who: &str) {
    assert_eq!(
        state.positions, positions,
        "{who}: the state holds every event of the log exactly once"
    );
}

/// When `Kernel::shutdown` returns, its runners' leases are free: another node (a tool such as
/// `es dlq skip`, or a kernel starting next) takes each at its first try.
#[test]
fn a_shutdown_leaves_its_runners_leases_free() {
    let rt = runtime(2);
    let url = rt.block_on(pg_url());
    let guard = SchemaGuard::fresh(&url, "elect_free");
    let schema = guard.schema.clone();
    let other = rt.block_on(open(&url, &schema));
    for round in 0..5 {
        let options = ProjectionOptions::default().poll_interval(Duration::from_millis(50));
        let (kernel, handle, store) = start(&rt, &url, &schema, options);
        append_and_follow(
            &rt,
            &store,
            &handle,
            (round * 10, 10, 1),
            "the runner follows",
        );
        assert!(matches!(
            rt.block_on(other.try_lease("tally")).unwrap(),
            Lease::HeldElsewhere
        ));
        rt.block_on(kernel.shutdown());
        let lease = rt.block_on(other.try_lease("tally")).unwrap();
        assert!(
            matches!(lease, Lease::Acquired(_)),
            "round {round}: the lease is still held after shutdown returned: {lease:?}"
        );
    }
}

/// Two kernels (each with its own runtime and pool) run `Tally` on one schema: one runs, the
/// other stands by (not caught up, handling nothing). The active runtime is dropped, as a dying
/// process would; the standby takes over from the checkpoint within seconds and handles
/// nothing twice. A third kernel then stands by, and a graceful shutdown of the second hands
/// the projection over too.
#[test]
fn a_standby_kernel_takes_over_a_projection_when_the_active_one_goes() {
    let main = runtime(1);
    let url = main.block_on(pg_url());
    let guard = SchemaGuard::fresh(&url, "elect");
    let schema = guard.schema.clone();
    let options = || {
        ProjectionOptions::default()
            .batch_size(20)
            .poll_interval(Duration::from_millis(100))
    };

    // Kernel A starts first, alone: it takes the lease.
    let rt_a = runtime(1);
    let (kernel_a, handle_a, _) = start(&rt_a, &url, &schema, options());
    poll_until(Duration::from_secs(10), || !handle_a.status().standby)
        .expect("the first runner never took the lease");

    let rt_b = runtime(1);
    let (kernel_b, handle_b, store_b) = start(&rt_b, &url, &schema, options());
    // Three lease polls later, B still stands by, and says so.
    std::thread::sleep(Duration::from_millis(1500));
    let status = handle_b.status();
    assert!(status.standby, "{status:?}");
    assert_eq!(status.phase, ProjectionPhase::Running, "{status:?}");

    rt_b.block_on(append_ticks(&store_b, 0, 200, 20));
    let log = rt_b.block_on(log_positions(&store_b));
    let head = *log.last().unwrap();
    wait_until_handled(&rt_a, &handle_a, head, "the active runner did not catch up");
    assert_each_once(&rt_a.block_on(handle_a.state()), &log, "runner A");
    // B handled nothing, and waiting on it does not pretend it is caught up.
    let status = handle_b.status();
    assert!(status.standby, "{status:?}");
    assert_eq!(status.position, 0, "{status:?}");
    assert_eq!(status.events_handled, 0, "{status:?}");
    assert_ne!(status.phase, ProjectionPhase::CaughtUp, "{status:?}");
    rt_b.block_on(async {
        let waited = tokio::time::timeout(Duration::from_secs(1), handle_b.wait_for(head)).await;
        assert!(
            waited.is_err(),
            "a standby reported position {head} processed"
        );
    });

    // A dies: its runtime goes with every task and connection it had.
    drop(handle_a);
    drop(kernel_a);
    drop(rt_a);
    let takeover = poll_until(Duration::from_secs(10), || {
        let status = handle_b.status();
        !status.standby && status.position >= head
    })
    .expect("the standby did not take over within 10 s");
    println!("kernel B took over {takeover:?} after kernel A's runtime was dropped");
    let status = handle_b.status();
    // A was caught up and had saved its checkpoint: B resumed from it, handling nothing again.
    assert_eq!(status.events_handled, 0, "{status:?}");
    assert_each_once(&rt_b.block_on(handle_b.state()), &log, "runner B");
    let log = append_and_follow(
        &rt_b,
        &store_b,
        &handle_b,
        (200, 50, 10),
        "the new active runner did not follow the log",
    );
    assert_eq!(handle_b.status().events_handled, 50);
    assert_each_once(&rt_b.block_on(handle_b.state()), &log, "runner B");
    let head = *log.last().unwrap();

    // C stands by; B's kernel shuts down (releasing the lease) and C takes over.
    let rt_c = runtime(1);
    let (kernel_c, handle_c, store_c) = start(&rt_c, &url, &schema, options());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(handle_c.status().standby, "{:?}", handle_c.status());
    rt_b.block_on(kernel_b.shutdown());
    let takeover = poll_until(Duration::from_secs(10), || {
        let status = handle_c.status();
        !status.standby && status.position >= head
    })
    .expect("the standby did not take over after a shutdown");
    println!("kernel C took over {takeover:?} after kernel B shut down");
    let log = append_and_follow(
        &rt_c,
        &store_c,
        &handle_c,
        (250, 10, 10),
        "the third runner did not follow the log",
    );
    assert_eq!(handle_c.status().events_handled, 10);
    assert_each_once(&rt_c.block_on(handle_c.state()), &log, "runner C");
    rt_c.block_on(kernel_c.shutdown());
    // What runs on a runtime goes before it.
    drop((handle_c, kernel_c, store_c));
    drop(rt_c);
    drop((handle_b, kernel_b, store_b));
    drop(rt_b);
}

// ---- Two processes -------------------------------------------------------------------------

/// Set in the children: the server URL; the schema is in [`SCHEMA_ENV`].
const CHILD_ENV: &str = "ES_ELECTION_CHILD";
const SCHEMA_ENV: &str = "ES_ELECTION_SCHEMA";
/// The runners' batch size: at most this many events are handled again after a takeover.
const BATCH: u64 = 50;
/// Events in the log before the children start, and appended after the takeover.
const FIRST: u64 = 3_000;
const SECOND: u64 = 500;
/// The active child is killed once it has recorded this many events.
const KILL_AFTER: i64 = 800;

/// The read model of [`Recorder`]: one row per event handled, with the process that handled
/// it, written (and committed) by the handler before the runner saves its checkpoint.
static SINK: OnceLock<(PgPool, String)> = OnceLock::new();

/// A projection whose read model lives in PostgreSQL, outside the checkpoint: the rows show
/// which process handled which event, and how many times.
#[derive(Debug, Default)]
struct Recorder;

#[projection(name = "recorder")]
impl Recorder {
    #[on]
    fn tick(&mut self, e: &Recorded<Tick>) -> Result<(), sqlx::Error> {
        let (pool, insert) = SINK
            .get()
            .expect("the sink is set before the runner starts");
        let position = i64::try_from(e.position).expect("positions fit in i64");
        let pid = i64::from(std::process::id());
        // The handler is synchronous: the insert runs to completion on this worker thread.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(sqlx::query(insert).bind(position).bind(pid).execute(pool))
        })?;
        // Slow enough that the kill lands mid-work.
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    }
}

/// A child: a kernel running `Recorder` on the schema, printing its status whenever the
/// standby flag or the phase changes (`@@status <pid> <standby> <phase>`).
#[test]
fn election_child() {
    let (Ok(url), Ok(schema)) = (std::env::var(CHILD_ENV), std::env::var(SCHEMA_ENV)) else {
        return;
    };
    runtime(2).block_on(async move {
        let sink = pool(&url, 2).await;
        let insert = format!("INSERT INTO \"{schema}\".seen (position, pid) VALUES ($1, $2)");
        SINK.set((sink, insert)).unwrap();
        let kernel = kernel(open(&url, &schema).await);
        let handle: ProjectionHandle<Recorder> = kernel
            .projections()
            .start(
                ProjectionOptions::default()
                    .batch_size(BATCH as usize)
                    .poll_interval(Duration::from_millis(100)),
            )
            .await
            .unwrap();
        let mut last = None;
        loop {
            let status = handle.status();
            let phase = match &status.phase {
                ProjectionPhase::Running => "running".to_owned(),
                ProjectionPhase::CaughtUp => "caught-up".to_owned(),
                ProjectionPhase::Stopped { error } => format!("stopped:{error:?}"),
            };
            let now = (status.standby, phase);
            if last.as_ref() != Some(&now) {
                println!("@@status {} {} {}", std::process::id(), now.0, now.1);
                std::io::stdout().flush().unwrap();
                last = Some(now);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// What a child reported: (pid, standby, phase).
type Report = (u32, bool, String);

fn spawn_child(url: &str, schema: &str, reports: mpsc::Sender<Report>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "election_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, url)
        .env(SCHEMA_ENV, schema)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // The harness prints `test election_child ... ` first, on the same line.
            let Some(at) = line.find("@@status ") else {
                continue;
            };
            let fields: Vec<&str> = line[at + 9..].split_whitespace().collect();
            if let [pid, standby, phase] = fields[..] {
                let _ = reports.send((
                    pid.parse().unwrap_or(0),
                    standby == "true",
                    phase.to_owned(),
                ));
            }
        }
    });
    child
}

/// Kills every child still running when the test ends, passed or not.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two processes run `Recorder` on one schema; the parent SIGKILLs the active one mid-work and
/// checks that the standby took over within seconds and finished the work exactly once, as far
/// as at-least-once checkpoints allow.
///
/// The handler commits a row (position, pid) per event before the runner saves the checkpoint
/// of its batch, and the checkpoint is saved after every batch of [`BATCH`] events. So what a
/// single active runner per name guarantees, and what is asserted:
/// - the killed child A recorded a prefix of the log (every event up to the last it recorded),
///   and the survivor B every event after the checkpoint it resumed from, `c`, and nothing
///   before it: every event is recorded, and neither process recorded any event twice;
/// - events recorded by both are exactly those after `c` up to A's last one: the batch A was
///   handling when it died, so at most [`BATCH`] of them, and `c` ends a whole batch;
/// - B recorded nothing before A was dead (no two runners at once), and said it was standing
///   by (never caught up) until then.
#[test]
fn the_standby_process_takes_over_a_projection_and_finishes_the_work_once() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rt = runtime(2);
    let url = rt.block_on(pg_url());
    let guard = SchemaGuard::fresh(&url, "elect2p");
    let schema = guard.schema.clone();
    let (store, sink) = rt.block_on(async {
        let store = open(&url, &schema).await;
        let sink = pool(&url, 2).await;
        sqlx::query(&format!(
            "CREATE TABLE \"{schema}\".seen (position bigint NOT NULL, pid bigint NOT NULL, \
             at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ))
        .execute(&sink)
        .await
        .unwrap();
        append_ticks(&store, 0, FIRST, 100).await;
        (store, sink)
    });
    let count_by = |pid: Option<u32>| -> i64 {
        rt.block_on(
            sqlx::query_scalar(&format!(
                "SELECT count(*) FROM \"{schema}\".seen WHERE $1::bigint IS NULL OR pid = $1"
            ))
            .bind(pid.map(i64::from))
            .fetch_one(&sink),
        )
        .unwrap()
    };
    let pids_seen = || -> Vec<u32> {
        let pids: Vec<i64> = rt
            .block_on(
                sqlx::query_scalar(&format!(
                    "SELECT DISTINCT pid FROM \"{schema}\".seen ORDER BY pid"
                ))
                .fetch_all(&sink),
            )
            .unwrap();
        pids.into_iter()
            .map(|p| u32::try_from(p).unwrap())
            .collect()
    };

    let (tx, reports) = mpsc::channel();
    let mut children = Children(vec![
        spawn_child(&url, &schema, tx.clone()),
        spawn_child(&url, &schema, tx),
    ]);
    poll_until(Duration::from_secs(60), || count_by(None) >= KILL_AFTER)
        .expect("no child recorded events within 60 s");
    let pids = pids_seen();
    assert_eq!(
        pids.len(),
        1,
        "two runners handled events at once: {pids:?}"
    );
    let active = pids[0];
    let index = children
        .0
        .iter()
        .position(|c| c.id() == active)
        .expect("the active runner is one of the children");
    let mut dead = children.0.remove(index);
    let survivor = children.0[0].id();
    dead.kill().unwrap();
    dead.wait().unwrap();
    let killed_db: chrono::DateTime<chrono::Utc> = rt
        .block_on(sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&sink))
        .unwrap();
    let takeover = poll_until(Duration::from_secs(20), || count_by(Some(survivor)) > 0)
        .expect("the standby did not take over within 20 s");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let by_active = count_by(Some(active));
    println!(
        "the standby took over {takeover:?} after the active process was killed (it had \
         recorded {by_active} events; load average {})",
        load.trim()
    );
    assert!(takeover < Duration::from_secs(10), "took {takeover:?}");
    assert!(
        (by_active as u64) < FIRST,
        "the active child finished all {FIRST} events before it was killed: nothing was \
         taken over (raise FIRST)"
    );

    rt.block_on(append_ticks(&store, FIRST, SECOND, 50));
    let log = rt.block_on(log_positions(&store));
    assert_eq!(log.len() as u64, FIRST + SECOND);
    let total = i64::try_from(log.len()).unwrap();
    poll_until(Duration::from_secs(120), || {
        let distinct: i64 = rt
            .block_on(
                sqlx::query_scalar(&format!(
                    "SELECT count(DISTINCT position) FROM \"{schema}\".seen"
                ))
                .fetch_one(&sink),
            )
            .unwrap();
        distinct >= total
    })
    .expect("the survivor did not finish the work within 120 s");
    // Give a runner that would record something twice the time to do it.
    std::thread::sleep(Duration::from_millis(500));
    drop(children);
    let reported: Vec<Report> = reports.try_iter().collect();

    let rows: Vec<(i64, i64, chrono::DateTime<chrono::Utc>)> = rt
        .block_on(
            sqlx::query_as(&format!(
                "SELECT position, pid, at FROM \"{schema}\".seen ORDER BY position, pid"
            ))
            .fetch_all(&sink),
        )
        .unwrap();
    let mut by_pid: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (position, pid, at) in &rows {
        let pid = u32::try_from(*pid).unwrap();
        assert!(
            pid == active || pid == survivor,
            "a third process recorded events"
        );
        if pid == survivor {
            assert!(
                *at > killed_db,
                "the standby recorded position {position} while the active one was alive"
            );
        }
        by_pid
            .entry(pid)
            .or_default()
            .push(u64::try_from(*position).unwrap());
    }
    let of_a = by_pid.remove(&active).unwrap_or_default();
    let of_b = by_pid.remove(&survivor).unwrap_or_default();
    for (who, recorded) in [("A", &of_a), ("B", &of_b)] {
        let unique: BTreeSet<u64> = recorded.iter().copied().collect();
        assert_eq!(
            unique.len(),
            recorded.len(),
            "runner {who} recorded an event twice"
        );
    }
    // A: a prefix of the log. B: everything after the checkpoint it resumed from.
    let a_last = *of_a.last().expect("A recorded events");
    let a_expected: Vec<u64> = log.iter().copied().filter(|p| *p <= a_last).collect();
    assert_eq!(
        of_a, a_expected,
        "A recorded every event up to its last one"
    );
    let b_first = *of_b.first().expect("B recorded events");
    let resumed_from = log
        .iter()
        .copied()
        .filter(|p| *p < b_first)
        .max()
        .unwrap_or(0);
    let b_expected: Vec<u64> = log.iter().copied().filter(|p| *p > resumed_from).collect();
    assert_eq!(
        of_b, b_expected,
        "B recorded every event after where it resumed"
    );
    assert!(
        resumed_from <= a_last,
        "B resumed at {resumed_from}, after A's last event {a_last}: events were lost"
    );
    let twice: Vec<u64> = log
        .iter()
        .copied()
        .filter(|p| *p > resumed_from && *p <= a_last)
        .collect();
    println!(
        "A recorded {} events, B {} (resuming after position {resumed_from}); {} recorded by \
         both (the batch A was in when killed)",
        of_a.len(),
        of_b.len(),
        twice.len()
    );
    assert!(
        twice.len() as u64 <= BATCH,
        "{} events were handled by both runners: more than the one batch in flight",
        twice.len()
    );
    // A reads pages of BATCH events (all of them accepted) and saves the checkpoint at the
    // last position of each: B resumed right after a whole number of pages.
    let pages_done = log.iter().take_while(|p| **p <= resumed_from).count();
    assert_eq!(
        pages_done as u64 % BATCH,
        0,
        "B resumed after position {resumed_from} (event {pages_done} of the log), not at a \
         checkpoint A saved"
    );

    // The survivor stood by, not caught up, until the active one died; then it ran.
    let mut standby_before_active = false;
    for (pid, standby, phase) in &reported {
        if *pid == survivor && *standby {
            standby_before_active = true;
            assert_ne!(phase, "caught-up", "a standby reported being caught up");
        }
    }
    assert!(standby_before_active, "{reported:?}");
    assert!(
        reported
            .iter()
            .any(|(pid, standby, phase)| *pid == survivor && !*standby && phase == "caught-up"),
        "the survivor never reported running and caught up: {reported:?}"
    );
}
