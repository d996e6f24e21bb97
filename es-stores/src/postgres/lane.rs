//! The lane's loop: which appends go into the next statement, and when a second statement may
//! start while one is in flight.
//!
//! Appends queue on one lane. Under a moderate load it writes one statement at a time, each with
//! everything that queued while the previous one ran: a statement's fixed cost on the server
//! (parse, bind, plan, commit, the head refresh after it) is then shared by as many appends as
//! possible, and no second transaction holds the readable head (and so the answers) back
//! behind the first. Measured on W1 with 64 clients (two cores, the server on the same
//! machine, 60,000 commands): with two lanes writing side by side the database committed 15.4k
//! transactions (appends, head refreshes, reads), with one 9.5k, and the server used a fifth
//! less CPU. Under a heavy load one statement of hundreds of events keeps one server core busy
//! for milliseconds: once [`PARALLEL_AT`] appends wait, another statement starts beside it, up
//! to the builder's `lanes`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use es_core::store::StreamId;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::writer::{Lane, Pending, chain_end, expected_exact};

/// A statement may start beside one in flight only when at least this many appends wait.
pub(crate) const PARALLEL_AT: usize = 64;

/// How long a statement that would run beside another waits for a connection of its own. It
/// gives its appends back if none comes (a pool whose connections are all in use): they wait
/// for the lane's connection rather than for one the lane itself holds.
const SECOND_CONNECTION_WAIT: Duration = Duration::from_millis(100);

/// After a statement found no connection of its own, how long the lane writes one statement at
/// a time before it tries again.
const SECOND_CONNECTION_BACKOFF: Duration = Duration::from_secs(1);

/// What a statement leaves when it ends: its connection, the streams it wrote, and the appends
/// it gave back unwritten (no connection came in time).
struct Done {
    conn: Option<PoolConnection<Postgres>>,
    streams: Vec<StreamId>,
    unwritten: Vec<Pending>,
}

type InFlight<'a> = Pin<Box<dyn Future<Output = Done> + Send + 'a>>;

impl Lane {
    /// Runs until every sender of `rx` is gone, the queue is drained and every statement has
    /// ended.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        // Requests taken from the queue but not written yet, in arrival order.
        let mut deferred: VecDeque<Pending> = VecDeque::new();
        // Connections between statements: kept while requests keep coming, given back to the
        // pool when the queue has stayed empty for a moment (see `held`).
        let mut idle: Vec<PoolConnection<Postgres>> = Vec::new();
        let mut in_flight: Vec<InFlight<'_>> = Vec::new();
        // Streams with a request in a statement in flight: their later requests wait for it.
        let mut busy: HashSet<StreamId> = HashSet::new();
        let mut open = true;
        let mut alone_until: Option<Instant> = None;
        loop {
            let waiting = deferred.len() + rx.len();
            let beside = in_flight.len() < self.parallel
                && waiting >= PARALLEL_AT
                && alone_until.is_none_or(|t| Instant::now() >= t);
            if waiting > 0 && (in_flight.is_empty() || beside) {
                let batch = self.collect(&mut deferred, &mut rx, &busy);
                if !batch.is_empty() {
                    self.group_size.record(batch.len() as f64);
                    let streams: Vec<StreamId> = batch.iter().map(|p| p.stream.clone()).collect();
                    busy.extend(streams.iter().cloned());
                    let conn = idle.pop();
                    let first = in_flight.is_empty();
                    in_flight.push(Box::pin(self.statement(batch, streams, conn, first)));
                    continue;
                }
            }
            if in_flight.is_empty() {
                // Nothing in flight and nothing to write: wait for the next request, keeping
                // one connection for a moment.
                let mut held = idle.pop();
                idle.clear();
                let next = if open {
                    super::held::next_request(&mut rx, &mut held).await
                } else {
                    None
                };
                idle.extend(held);
                match next {
                    Some(p) => deferred.push_back(p),
                    None if deferred.is_empty() => return,
                    None => open = false,
                }
                continue;
            }
            // Wait for a statement to end, or for a request that may let another one start.
            let may_take = open && in_flight.len() < self.parallel;
            tokio::select! {
                done = any(&mut in_flight) => {
                    for stream in &done.streams {
                        busy.remove(stream);
                    }
                    idle.extend(done.conn);
                    if !done.unwritten.is_empty() {
                        alone_until = Some(Instant::now() + SECOND_CONNECTION_BACKOFF);
                        for pending in done.unwritten.into_iter().rev() {
                            deferred.push_front(pending);
                        }
                    }
                }
                next = rx.recv(), if may_take => match next {
                    Some(p) => deferred.push_back(p),
                    None => open = false,
                },
            }
        }
    }

    /// The next statement's appends: earlier deferred requests first, then whatever queued up
    /// since, in arrival order, at most `max_appends` of them. A request whose stream is in a
    /// statement in flight (`busy`) waits for it, and so do its stream's later requests.
    /// Several requests of one stream go in one statement only as a chain (each expecting the
    /// version the one before leaves), which the statement decides as if they ran one after
    /// another. What is left waits in `deferred`, in order.
    fn collect(
        &self,
        deferred: &mut VecDeque<Pending>,
        rx: &mut mpsc::Receiver<Pending>,
        busy: &HashSet<StreamId>,
    ) -> Vec<Pending> {
        let mut batch: Vec<Pending> = Vec::new();
        let mut events = 0;
        // Streams with a request in the batch, and the version the last one leaves if a
        // further request may chain onto it (see `chain_end`).
        let mut chains: HashMap<StreamId, Option<u64>> = HashMap::new();
        // Streams with a request left for a later statement: their later requests wait too.
        let mut blocked: HashSet<StreamId> = HashSet::new();
        let mut later = VecDeque::new();
        let mut from_queue = false;
        while batch.len() < self.max_appends {
            let next = match deferred.pop_front() {
                Some(p) => p,
                None => {
                    from_queue = true;
                    match rx.try_recv() {
                        Ok(p) => p,
                        Err(_) => break,
                    }
                }
            };
            let fits = events + next.events.len() <= self.max_events;
            let joins = !busy.contains(&next.stream)
                && !blocked.contains(&next.stream)
                && match chains.get(&next.stream) {
                    None => true,
                    Some(end) => end.is_some() && *end == expected_exact(next.expected),
                };
            if fits && joins {
                events += next.events.len();
                chains.insert(next.stream.clone(), chain_end(&next));
                batch.push(next);
            } else {
                blocked.insert(next.stream.clone());
                later.push_back(next);
                if !fits && from_queue {
                    break;
                }
            }
        }
        later.extend(deferred.drain(..));
        *deferred = later;
        batch
    }

    /// One statement: writes `batch` on `conn` (or a connection from the pool) and answers its
    /// requests. A statement that would run beside another (`first` false) and has no
    /// connection gives its appends back if none comes within [`SECOND_CONNECTION_WAIT`].
    async fn statement(
        &self,
        batch: Vec<Pending>,
        streams: Vec<StreamId>,
        mut conn: Option<PoolConnection<Postgres>>,
        first: bool,
    ) -> Done {
        if conn.is_none() && !first {
            match tokio::time::timeout(SECOND_CONNECTION_WAIT, self.pool.acquire()).await {
                Ok(Ok(c)) => conn = Some(c),
                _ => {
                    return Done {
                        conn: None,
                        streams,
                        unwritten: batch,
                    };
                }
            }
        }
        self.commit(batch, &mut conn).await;
        Done {
            conn,
            streams,
            unwritten: Vec::new(),
        }
    }
}

/// The output of whichever of `futures` ends first (removed from the list); pending while the
/// list is empty.
fn any<'f, 'a>(futures: &'f mut Vec<InFlight<'a>>) -> impl Future<Output = Done> + 'f {
    std::future::poll_fn(move |cx| {
        for i in 0..futures.len() {
            if let Poll::Ready(done) = futures[i].as_mut().poll(cx) {
                drop(futures.swap_remove(i));
                return Poll::Ready(done);
            }
        }
        Poll::Pending
    })
}
