//! Process-manager deadlines on two nodes sharing a PostgreSQL store: the node holding the
//! runner's lease fires a deadline once (the standby never does); when that node is killed
//! (its runtime, tasks and connections gone, no checkpoint saved at a stop) and the deadline's
//! time passes while nobody runs, the standby takes over and fires it once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use es_core::clock::ManualClock;
use es_core::prelude::*;
use es_core::process::CHECKPOINT_PREFIX;
use es_stores::PostgresStore;
use serde::{Deserialize, Serialize};

use crate::postgres_common::{SchemaGuard, pg_url, pool, shared, unique_schema};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Set;
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ring;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct AlarmSet;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Rang;

/// An alarm clock that rings at most once (so the `Rang` events count effects).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Alarm {
    rang: bool,
}

#[aggregate(name = "alarm")]
impl Alarm {
    #[command]
    fn set(&self, _: Set) -> Result<AlarmSet, std::convert::Infallible> {
        Ok(AlarmSet)
    }
    #[command]
    fn ring(&self, _: Ring) -> Result<Option<Rang>, std::convert::Infallible> {
        Ok((!self.rang).then_some(Rang))
    }
    #[apply]
    fn alarm_set(&mut self, _: &AlarmSet) {}
    #[apply]
    fn rang(&mut self, _: &Rang) {
        self.rang = true;
    }
}

/// The deadline: a minute after the alarm was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct WakeUp {
    alarm: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Wakeups;

#[process_manager(name = "wakeups")]
impl Wakeups {
    #[on(start)]
    fn set(&mut self, e: &Recorded<AlarmSet>, out: &mut Commands) {
        let alarm = e.stream.aggregate_id.clone();
        out.schedule(Duration::from_secs(60), WakeUp { alarm });
    }
    #[on(deadline)]
    fn wake_up(&mut self, d: &WakeUp, out: &mut Commands) {
        out.dispatch::<Alarm>(&d.alarm, Ring);
        out.finish();
    }
}

/// One node: its runtime, with a kernel on its own pool, running `Wakeups`.
struct Node {
    runtime: tokio::runtime::Runtime,
    store: PostgresStore,
    kernel: Kernel,
    wakeups: ProcessHandle<Wakeups>,
}

impl Node {
    fn start(url: &str, schema: &str, clock: &ManualClock) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (store, kernel, wakeups) = runtime.block_on(async {
            let store = PostgresStore::builder(pool(url, 4).await)
                .schema(schema.to_owned())
                .build()
                .await
                .unwrap();
            let kernel = Kernel::builder()
                .store(store.clone())
                .clock(clock.clone())
                .register::<Alarm>()
                .build()
                .unwrap();
            let managers = kernel.process_managers();
            let wakeups = managers.start::<Wakeups>(ProjectionOptions::default());
            let wakeups = wakeups.await.unwrap();
            (store, kernel, wakeups)
        });
        Node {
            runtime,
            store,
            kernel,
            wakeups,
        }
    }

    /// Ends the node as a crash does (unless its kernel was shut down first): its runtime goes
    /// with every task and connection, and nothing is saved at a stop.
    fn kill(self) {
        let Node {
            runtime,
            store,
            kernel,
            wakeups,
        } = self;
        drop((wakeups, kernel, store));
        drop(runtime);
    }

    fn set(&self, alarm: &str) {
        let options = DispatchOptions::default().correlation_id(alarm);
        self.runtime
            .block_on(self.kernel.dispatch_with::<Alarm>(alarm, Set, options))
            .unwrap();
    }

    fn rang(&self) -> usize {
        let events = self
            .runtime
            .block_on(self.store.read_all(1, usize::MAX))
            .unwrap();
        events.iter().filter(|e| e.event_type == "Rang").count()
    }

    /// Whether the node's checkpoint holds every event of the log (and so the deadlines they
    /// scheduled).
    fn saved_up_to_head(&self) -> bool {
        self.runtime.block_on(async {
            let head = self.store.head_position().await.unwrap();
            let name = format!("{CHECKPOINT_PREFIX}wakeups");
            let saved = CheckpointStore::load(&self.store, &name).await.unwrap();
            saved.is_some_and(|c| c.position >= head)
        })
    }
}

/// Polls `check` every 20 ms until it holds; fails naming `what` after 20 s.
fn poll_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_nodes_fire_a_deadline_once_and_the_standby_fires_it_after_the_leader_is_killed() {
    let setup = tokio::runtime::Runtime::new().unwrap();
    let url = setup.block_on(pg_url());
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: unique_schema("deadlines"),
        isolation: Some(setup.block_on(shared())),
    };
    let schema = _guard.schema.clone();
    let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
    let a = Node::start(&url, &schema, &clock);
    poll_until("node A never took the lease", || {
        !a.wakeups.status().standby
    });
    let b = Node::start(&url, &schema, &clock);
    std::thread::sleep(Duration::from_millis(1_200));
    assert!(b.wakeups.status().standby, "{:?}", b.wakeups.status());

    // The leader fires a deadline once; the standby does nothing.
    a.set("first");
    poll_until("A did not schedule", || a.wakeups.pending_deadlines() == 1);
    clock.advance(Duration::from_secs(60));
    poll_until("A did not fire", || a.rang() == 1);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(a.rang(), 1);
    assert_eq!(a.wakeups.status().deadlines_fired, 1);
    assert_eq!(b.wakeups.status().deadlines_fired, 0);

    // A schedules another and saves it with its checkpoint; then A is killed.
    a.set("second");
    poll_until("A did not schedule the second", || {
        a.wakeups.pending_deadlines() == 1 && a.saved_up_to_head()
    });
    a.kill();
    // The deadline's time passes while nobody runs the manager.
    clock.advance(Duration::from_secs(3_600));
    poll_until("B did not take over and fire", || b.rang() == 2);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(b.rang(), 2, "each alarm rang once");
    let status = b.wakeups.status();
    assert!(!status.standby, "{status:?}");
    assert_eq!(status.deadlines_fired, 1, "{status:?}");
    assert_eq!(
        (status.deadlines_pending, status.instances),
        (0, 0),
        "{status:?}"
    );
    b.runtime.block_on(b.kernel.shutdown());
    b.kill();
}
