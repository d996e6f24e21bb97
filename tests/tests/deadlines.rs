//! Process-manager deadlines end to end, on the embedded stores: a deadline fires once after
//! its time by the kernel's clock (however far a `ManualClock` jumps), not at all when
//! cancelled or when its instance finished first, and once after a restart when its time
//! passed while nobody ran, on a store opened again; a restart from an older checkpoint, or
//! after a SIGKILL while deadlines fire, fires them again with the same command ids, which take
//! no effect twice.
//!
//! The SIGKILL test's child is this test binary re-invoked with `ES_DEADLINE_CRASH_CHILD=<dir>`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use es_core::clock::ManualClock;
use es_core::prelude::*;
use es_core::process::CHECKPOINT_PREFIX;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Place;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pay;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ship;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expire;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Placed;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Paid;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Shipped;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Expired;

/// An order. Every `Expire` it runs records an `Expired`: only the idempotency of commands
/// (the deadline handler's derived command ids) keeps a deadline fired twice from counting
/// twice.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Order;

#[aggregate(name = "order")]
impl Order {
    #[command]
    fn place(&self, _: Place) -> Result<Placed, std::convert::Infallible> {
        Ok(Placed)
    }
    #[command]
    fn pay(&self, _: Pay) -> Result<Paid, std::convert::Infallible> {
        Ok(Paid)
    }
    #[command]
    fn ship(&self, _: Ship) -> Result<Shipped, std::convert::Infallible> {
        Ok(Shipped)
    }
    #[command]
    fn expire(&self, _: Expire) -> Result<Expired, std::convert::Infallible> {
        Ok(Expired)
    }
    #[apply]
    fn placed(&mut self, _: &Placed) {}
    #[apply]
    fn paid(&mut self, _: &Paid) {}
    #[apply]
    fn shipped(&mut self, _: &Shipped) {}
    #[apply]
    fn expired(&mut self, _: &Expired) {}
}

/// The deadline: the order was not paid in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "checkout.payment_due", version = 1)]
pub struct PaymentDue {
    order: String,
}

/// Expires an order not paid within 30 s. Paying cancels the deadline (the instance lives on);
/// shipping ends the instance.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkout {
    paid: bool,
}

#[process_manager(name = "checkout")]
impl Checkout {
    #[on(start)]
    fn placed(&mut self, e: &Recorded<Placed>, out: &mut Commands) {
        let order = e.stream.aggregate_id.clone();
        out.schedule(Duration::from_secs(30), PaymentDue { order });
    }
    #[on]
    fn paid(&mut self, _: &Recorded<Paid>, out: &mut Commands) {
        self.paid = true;
        out.cancel::<PaymentDue>();
    }
    #[on]
    fn shipped(&mut self, _: &Recorded<Shipped>, out: &mut Commands) {
        out.finish();
    }
    #[on(deadline)]
    fn payment_due(&mut self, d: &PaymentDue, out: &mut Commands) {
        out.dispatch::<Order>(&d.order, Expire);
        out.finish();
    }
}

fn epoch_clock() -> ManualClock {
    ManualClock::new(DateTime::<Utc>::UNIX_EPOCH)
}

fn kernel<S>(store: S, clock: &ManualClock) -> Kernel
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    Kernel::builder()
        .store(store)
        .clock(clock.clone())
        .register::<Order>()
        .build()
        .unwrap()
}

async fn start(kernel: &Kernel) -> ProcessHandle<Checkout> {
    kernel
        .process_managers()
        .start::<Checkout>(ProjectionOptions::default())
        .await
        .unwrap()
}

/// Sends `command` to order `id`, in the order's own correlation (the instance's key).
async fn order(kernel: &Kernel, id: &str, command: impl Into<OrderCommand>) {
    let options = DispatchOptions::default().correlation_id(id);
    kernel
        .dispatch_with::<Order>(id, command, options)
        .await
        .unwrap();
}

/// Waits until the runner handled the whole log, including what its commands caused.
async fn settle(kernel: &Kernel, handle: &ProcessHandle<Checkout>) {
    for _ in 0..3 {
        let head = kernel.event_store().head_position().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), handle.wait_for(head))
            .await
            .expect("the runner did not catch up")
            .unwrap();
    }
}

async fn expired(kernel: &Kernel) -> usize {
    let events = kernel.event_store().read_all(1, usize::MAX).await.unwrap();
    events.iter().filter(|e| e.event_type == "Expired").count()
}

/// Polls `check` until it holds (10 s at most, then fails naming `what`).
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Gives a runner that has nothing to do the time to do it wrongly.
async fn quiet(kernel: &Kernel, handle: &ProcessHandle<Checkout>) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    settle(kernel, handle).await;
}

#[tokio::test]
async fn a_deadline_fires_once_when_the_clock_passes_it_however_far_it_jumps() {
    let clock = epoch_clock();
    let kernel = kernel(MemoryStore::new(), &clock);
    let handle = start(&kernel).await;
    order(&kernel, "o-1", Place).await;
    clock.advance(Duration::from_secs(10));
    order(&kernel, "o-2", Place).await;
    settle(&kernel, &handle).await;
    assert_eq!(handle.pending_deadlines(), 2);

    clock.advance(Duration::from_secs(19)); // o-1 is due at 30 s, o-2 at 40 s
    quiet(&kernel, &handle).await;
    assert_eq!(expired(&kernel).await, 0, "not yet due");

    clock.advance(Duration::from_secs(1)); // 30 s: o-1 only
    eventually("o-1 expires", || async { expired(&kernel).await == 1 }).await;
    settle(&kernel, &handle).await;
    assert_eq!(handle.pending_deadlines(), 1);
    assert_eq!(handle.instances().await, 1);

    clock.advance(Duration::from_secs(86_400)); // one jump of a day: o-2 fires once
    eventually("o-2 expires", || async { expired(&kernel).await == 2 }).await;
    for _ in 0..50 {
        clock.advance(Duration::from_secs(1));
    }
    quiet(&kernel, &handle).await;
    assert_eq!(expired(&kernel).await, 2);
    let status = handle.status();
    assert_eq!(status.deadlines_fired, 2);
    assert_eq!((status.deadlines_pending, status.instances), (0, 0));
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_deadline_and_the_deadline_of_a_finished_instance_never_fire() {
    let clock = epoch_clock();
    let kernel = kernel(MemoryStore::new(), &clock);
    let handle = start(&kernel).await;
    order(&kernel, "paid", Place).await;
    order(&kernel, "paid", Pay).await;
    order(&kernel, "shipped", Place).await;
    order(&kernel, "shipped", Ship).await;
    settle(&kernel, &handle).await;
    assert_eq!(handle.pending_deadlines(), 0);
    assert_eq!(
        handle.instances().await,
        1,
        "paying cancels, it does not finish"
    );

    clock.advance(Duration::from_secs(3_600));
    quiet(&kernel, &handle).await;
    assert_eq!(expired(&kernel).await, 0);
    assert_eq!(handle.status().deadlines_fired, 0);
    kernel.shutdown().await;
}

/// Runs the restart scenario on the store `open` opens (again, for each kernel).
async fn a_deadline_whose_time_passed_while_nobody_ran_fires_once<S>(open: impl Fn() -> S)
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    let clock = epoch_clock();
    let checkpoint = format!("{CHECKPOINT_PREFIX}checkout");
    // Schedule, and stop (the deadline is saved with the instance).
    let saved = {
        let store = open();
        let first = kernel(store.clone(), &clock);
        let handle = start(&first).await;
        order(&first, "o-1", Place).await;
        settle(&first, &handle).await;
        assert_eq!(handle.pending_deadlines(), 1);
        first.shutdown().await;
        CheckpointStore::load(&store, &checkpoint)
            .await
            .unwrap()
            .unwrap()
    };
    clock.advance(Duration::from_secs(3_600));
    // A restart an hour later: the deadline fires once, as the runner catches up.
    {
        let second = kernel(open(), &clock);
        let handle = start(&second).await;
        eventually("the deadline fires", || async {
            expired(&second).await == 1
        })
        .await;
        settle(&second, &handle).await;
        assert_eq!(handle.pending_deadlines(), 0);
        assert_eq!(handle.instances().await, 0);
        assert_eq!(handle.status().deadlines_fired, 1);
        second.shutdown().await;
    }
    // Another restart: it stays fired.
    {
        let third = kernel(open(), &clock);
        let handle = start(&third).await;
        clock.advance(Duration::from_secs(3_600));
        quiet(&third, &handle).await;
        assert_eq!(expired(&third).await, 1);
        assert_eq!(handle.status().deadlines_fired, 0);
        third.shutdown().await;
    }
    // A crash after the firing's commands committed but before its checkpoint was saved: the
    // next runner resumes from the older checkpoint and fires the deadline again, with the same
    // command ids, which the order's idempotency window answers.
    {
        let store = open();
        CheckpointStore::save(&store, &checkpoint, saved.position, saved.state)
            .await
            .unwrap();
        let fourth = kernel(store, &clock);
        let handle = start(&fourth).await;
        eventually("the deadline fires again", || async {
            handle.status().deadlines_fired == 1
        })
        .await;
        quiet(&fourth, &handle).await;
        assert_eq!(expired(&fourth).await, 1, "its effect took place once");
        let events = fourth.event_store().read_all(1, usize::MAX).await.unwrap();
        let expire = events.iter().find(|e| e.event_type == "Expired").unwrap();
        assert_eq!(expire.command_id(), Some("checkout/o-1/1:0/0"));
        assert_eq!(expire.causation_id(), Some("deadline@1:0"));
        assert_eq!(handle.pending_deadlines(), 0);
        fourth.shutdown().await;
    }
}

#[tokio::test]
async fn restarts_on_the_memory_store() {
    let store = MemoryStore::new();
    a_deadline_whose_time_passed_while_nobody_ran_fires_once(|| store.clone()).await;
}

#[tokio::test]
async fn restarts_on_a_reopened_lmdb_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    a_deadline_whose_time_passed_while_nobody_ran_fires_once(|| {
        es_stores::LmdbStore::open(&path).unwrap()
    })
    .await;
}

#[tokio::test]
async fn restarts_on_a_reopened_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    a_deadline_whose_time_passed_while_nobody_ran_fires_once(|| {
        es_stores::FileStore::open(&path).unwrap()
    })
    .await;
}

/// Schedules a deadline it has no handler for.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Forgetful;

#[process_manager(name = "forgetful")]
impl Forgetful {
    #[on(start)]
    fn placed(&mut self, e: &Recorded<Placed>, out: &mut Commands) {
        let order = e.stream.aggregate_id.clone();
        out.schedule_at(e.timestamp, PaymentDue { order });
    }
}

/// A deadline that no `#[on(deadline)]` handler takes is an error of the handler, under the
/// error policy: the default stops the runner, saying which deadline it was.
#[tokio::test]
async fn a_deadline_without_a_handler_stops_the_runner_naming_it() {
    let clock = epoch_clock();
    let kernel = kernel(MemoryStore::new(), &clock);
    let handle = kernel
        .process_managers()
        .start::<Forgetful>(ProjectionOptions::default())
        .await
        .unwrap();
    order(&kernel, "o-1", Place).await;
    let error = tokio::time::timeout(Duration::from_secs(10), handle.wait_for(u64::MAX))
        .await
        .expect("the runner did not stop")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no `#[on(deadline)]` handler for the deadline `checkout.payment_due`"),
        "{error}"
    );
    kernel.shutdown().await;
}

// ---- SIGKILL while deadlines fire ----------------------------------------------------------

const CHILD_ENV: &str = "ES_DEADLINE_CRASH_CHILD";
const ORDERS: usize = 600;

/// A clock `hours` after the epoch.
fn clock_at(hours: u64) -> ManualClock {
    let clock = epoch_clock();
    clock.advance(Duration::from_secs(hours * 3_600));
    clock
}

/// The child: opens the store an hour after the orders were placed, so every deadline is due,
/// says so, and runs until killed.
#[test]
fn deadline_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = es_stores::LmdbStore::open(&dir).unwrap();
        let kernel = kernel(store, &clock_at(1));
        let _handle = start(&kernel).await;
        println!("@@running");
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

/// Runs a child on `dir` and SIGKILLs it `after` its runner started.
fn run_and_kill(dir: &str, after: Duration) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "deadline_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let running = lines.any(|line| line.is_ok_and(|l| l.contains("@@running")));
    assert!(running, "the child did not start its runner");
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn deadlines_fire_once_in_effect_across_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Place the orders and save their deadlines, due 30 s later.
    runtime.block_on(async {
        let store = es_stores::LmdbStore::open(&path).unwrap();
        let kernel = kernel(store, &epoch_clock());
        let handle = start(&kernel).await;
        let mut placing = tokio::task::JoinSet::new();
        for i in 0..ORDERS {
            let kernel = kernel.clone();
            placing.spawn(async move { order(&kernel, &format!("o-{i}"), Place).await });
        }
        placing.join_all().await;
        settle(&kernel, &handle).await;
        assert_eq!(handle.pending_deadlines(), ORDERS);
        kernel.shutdown().await;
    });
    // Children fire them, each killed at another point: before, while and after they fire.
    let path_str = path.to_str().unwrap();
    let mut counts = Vec::new();
    for after in [0, 3, 6, 8, 10, 12, 15, 20, 40, 80] {
        run_and_kill(path_str, Duration::from_millis(after));
        counts.push(runtime.block_on(async {
            let store = es_stores::LmdbStore::open(&path).unwrap();
            let events = store.read_all(1, usize::MAX).await.unwrap();
            events.iter().filter(|e| e.event_type == "Expired").count()
        }));
    }
    println!("orders expired after each kill: {counts:?}");
    // A last runner finishes what is left; every order expired exactly once.
    runtime.block_on(async {
        let store = es_stores::LmdbStore::open(&path).unwrap();
        let kernel = kernel(store, &clock_at(2));
        let handle = start(&kernel).await;
        eventually("every order expires", || async {
            expired(&kernel).await >= ORDERS
        })
        .await;
        quiet(&kernel, &handle).await;
        let events = kernel.event_store().read_all(1, usize::MAX).await.unwrap();
        let mut per_order: HashMap<&str, usize> = HashMap::new();
        for e in events.iter().filter(|e| e.event_type == "Expired") {
            *per_order.entry(e.stream.aggregate_id.as_str()).or_default() += 1;
        }
        assert_eq!(per_order.len(), ORDERS);
        assert!(per_order.values().all(|n| *n == 1), "{per_order:?}");
        assert_eq!(
            (handle.pending_deadlines(), handle.instances().await),
            (0, 0)
        );
        kernel.shutdown().await;
    });
}
