//! The commit step of the LMDB store's group commit: the writer thread
//! ([`crate::group_commit`]) owns every LMDB write transaction.
//!
//! [`TxnWriter::commit`] applies a group of requests in arrival order inside one write
//! transaction, commits once and then answers every request. Each append's expected version
//! is checked inside the transaction, so earlier requests of the same batch are visible to
//! later ones; a rejected request writes nothing and does not affect its neighbours. Each
//! request carries its own outcome (see `request.rs`).
//!
//! In the durable mode the environment is opened with `MDB_NOMETASYNC` and the writer
//! pipelines the flushes: a commit flushes its data pages (`fdatasync`) and writes its meta page
//! without flushing it; the next commit's data flush (or, when the next group would be small, an
//! explicit flush in [`Committer::settle`]) makes that meta page durable, and only then are the
//! requests of the earlier commit answered and the new head published. Every answer still
//! means "durable", at one flush per commit instead of two while the groups stay full. LMDB
//! keeps this consistent: a transaction never reuses the pages freed by the transaction before
//! it, so the last durable meta page always points at intact pages.
//!
//! The answers themselves (waking the waiting tasks, dropping the requests) go to a thread of
//! their own ([`Answerer`]), handed a whole batch once it is durable and its head published,
//! so that the writer thread starts the next transaction at once; a small batch is answered
//! on the writer thread, which costs less than waking the answer thread.
//!
//! When LMDB reports `MDB_MAP_FULL`, the transaction is aborted, the map grows (doubling, up to
//! the configured maximum) and the whole batch is replayed; callers never see it. Past the maximum
//! the request that did not fit gets [`StoreError::Full`] and the rest of the batch is replayed
//! without it.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use es_core::store::{ExpectedVersion, NewEvent, StoreError, StreamId};
use heed::types::Bytes;
use heed::{Env, MdbError, PutFlags, RwTxn, WithoutTls};
use parking_lot::RwLock;
use tokio::sync::watch;

use super::codec::EventFields;
use super::heads::Heads;
use super::open::{Dbs, heed_error};
use super::pending::IndexWriter;
use super::request::{Appended, Outcome, Request, Target};
use crate::group_commit::Committer;

/// The largest batch the writer thread answers itself (see [`Answerer`]). Measured with W1 on
/// LMDB, 64 clients (groups of about 28 requests): 1.09 times the commands per second of a
/// writer that handed every batch over, median of 14 alternating pairs; with 1,024 clients the
/// groups are larger and go to the answer thread as before.
const ANSWER_HERE_UP_TO: usize = 64;

/// Why applying a request stopped the transaction.
enum Abort {
    /// The map is full: grow and replay.
    MapFull,
    /// This request failed while writing: replay the batch without it.
    Request(StoreError),
}

/// Why a whole attempt failed.
enum AttemptError {
    /// Replay the batch (after growing the map or excluding a request).
    Retry,
    /// Give up: answer every request still pending with this error.
    Fatal(StoreError),
}

/// The writer's state, owned by its thread.
pub(super) struct TxnWriter {
    pub(super) env: Env<WithoutTls>,
    pub(super) dbs: Dbs,
    pub(super) head: Arc<watch::Sender<u64>>,
    /// Held exclusively while resizing the map, shared by every reader of this process.
    pub(super) resize_gate: Arc<RwLock<()>>,
    pub(super) max_map_size: usize,
    /// Scratch buffer for encoding records.
    pub(super) buf: Vec<u8>,
    /// Scratch buffer for the stream index keys of an append.
    pub(super) index_key: Vec<u8>,
    /// Whether answers wait for the next flush (the durable mode, see the module docs). The
    /// other modes do not flush each commit, so the writer flushes once more when closing.
    pub(super) pipelined: bool,
    /// The requests of the last commit, whose meta page is not flushed yet, and the head
    /// position after it.
    pub(super) deferred: Option<(Vec<Request>, u64)>,
    /// The stream heads this writer knows (see [`Heads`]).
    pub(super) heads: Heads,
    /// Answers the requests of durable commits.
    pub(super) answers: Answerer,
    /// The stream index written behind the log (see `pending.rs`).
    pub(super) index: IndexWriter,
    /// Whether the attempt in progress writes its index entries itself (see
    /// [`TxnWriter::attempt`]).
    pub(super) direct: bool,
}

/// Answers the requests of durable commits on a thread of its own, so that the writer thread
/// goes on to the next group while the tasks that wait are woken. A batch is handed over only
/// once durable and once its head is published, so every answer still means "durable".
///
/// A batch of at most [`ANSWER_HERE_UP_TO`] requests is answered on the writer thread instead:
/// waking a few dozen tasks takes less than waking the answer thread, and the answers reach
/// their callers sooner (answers of different batches may then arrive out of order; each
/// caller waits for its own).
pub(super) struct Answerer {
    /// `None` once stopped.
    batches: Option<std::sync::mpsc::Sender<Vec<Request>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Answerer {
    /// Starts the answer thread.
    pub(super) fn spawn() -> Result<Self, StoreError> {
        let (batches, received) = std::sync::mpsc::channel::<Vec<Request>>();
        let thread = std::thread::Builder::new()
            .name("es-lmdb-answers".to_owned())
            .spawn(move || {
                for batch in received {
                    batch.into_iter().for_each(Request::answer);
                }
            })
            .map_err(|e| StoreError::io("starting the es-lmdb-answers thread", e))?;
        Ok(Self {
            batches: Some(batches),
            thread: Some(thread),
        })
    }

    /// Answers every request of `batch`: here when it is small or the answer thread is gone,
    /// otherwise on the answer thread.
    fn answer(&self, batch: Vec<Request>) {
        if batch.len() <= ANSWER_HERE_UP_TO {
            batch.into_iter().for_each(Request::answer);
            return;
        }
        let unsent = match &self.batches {
            Some(batches) => match batches.send(batch) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(batch)) => batch,
            },
            None => batch,
        };
        unsent.into_iter().for_each(Request::answer);
    }

    /// Returns once every batch handed over is answered and the thread has stopped.
    fn stop(&mut self) {
        drop(self.batches.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the lmdb answer thread panicked");
        }
    }
}

impl Drop for Answerer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Committer for TxnWriter {
    type Request = Request;

    /// Keeps each transaction's payload well below LMDB's dirty-page limit.
    const MAX_GROUP_BYTES: usize = 32 << 20;

    fn size(request: &Request) -> usize {
        request.size()
    }

    fn commit(&mut self, group: Vec<Request>) {
        self.process(group);
    }

    /// Flushes the meta page of the last commit and answers its requests.
    fn settle(&mut self) {
        self.flush_deferred();
    }

    /// Answers what is deferred, and flushes once more when the durability mode does not
    /// flush each commit.
    fn finish(mut self) -> Result<(), StoreError> {
        self.flush_deferred();
        self.answers.stop();
        let indexed = self.flush_index();
        if !self.pipelined {
            self.env
                .force_sync()
                .map_err(|e| heed_error("final flush on close", e))?;
        }
        tracing::debug!(path = %self.env.path().display(), "lmdb writer stopped");
        indexed
    }
}

impl TxnWriter {
    /// Writes one batch in one transaction and answers every request in it.
    fn process(&mut self, mut batch: Vec<Request>) {
        let started = Instant::now();
        let head = loop {
            batch.iter_mut().for_each(Request::reset);
            match self.attempt(&mut batch) {
                Ok(head) => break head,
                Err(AttemptError::Retry) => batch.iter_mut().for_each(Request::exclude_if_failed),
                Err(AttemptError::Fatal(error)) => {
                    tracing::error!(%error, requests = batch.len(), "lmdb: group commit failed");
                    // The failed commit may not have flushed: the earlier one is flushed now.
                    self.flush_deferred();
                    for mut request in batch {
                        if !request.is_excluded() {
                            request.reject(error.clone());
                        }
                        request.answer();
                    }
                    return;
                }
            }
        };
        self.heads.commit();
        tracing::trace!(
            requests = batch.len(),
            head,
            elapsed_us = started.elapsed().as_micros() as u64,
            "lmdb: group commit"
        );
        if self.pipelined {
            // This commit's data flush also flushed the meta page of the one before.
            if let Some((earlier, earlier_head)) = self.deferred.replace((batch, head)) {
                self.publish(earlier_head);
                self.answers.answer(earlier);
            }
        } else {
            self.publish(head);
            self.answers.answer(batch);
        }
    }

    /// Makes the last commit durable (one `fdatasync`) and answers its requests; when the
    /// flush fails they get the error (their events may or may not survive a machine crash).
    fn flush_deferred(&mut self) {
        let Some((batch, head)) = self.deferred.take() else {
            return;
        };
        match self.env.force_sync() {
            Ok(()) => {
                self.publish(head);
                self.answers.answer(batch);
            }
            Err(e) => {
                let error = heed_error("flush a commit to disk", e);
                tracing::error!(%error, requests = batch.len(), "lmdb: flush failed");
                // The commit is visible in this process: publish it so readers do not stall.
                self.publish(head);
                for mut request in batch {
                    request.reject(error.clone());
                    request.answer();
                }
            }
        }
    }

    /// Tells the subscribers the head moved to `head`.
    fn publish(&self, head: u64) {
        self.head.send_if_modified(|current| {
            let changed = *current < head;
            if changed {
                *current = head;
            }
            changed
        });
    }

    /// One try at writing the batch: applies every request not excluded, then commits.
    /// Returns the head position after the commit.
    ///
    /// The index entries of the batch's appends go to `Pending` (before the commit, so that no
    /// reader of the committed log misses them; forgotten again when the attempt fails),
    /// unless the batch truncates a stream (which reads the index) or the index is written in
    /// each commit: then the attempt writes every pending entry and its own to the databases
    /// ("direct"). Otherwise the attempt may write a step of a sweep (see `pending.rs`).
    fn attempt(&mut self, batch: &mut [Request]) -> Result<u64, AttemptError> {
        // A handle of our own, so that the transaction does not borrow `self`.
        let env = self.env.clone();
        let mut txn = env
            .write_txn()
            .map_err(|e| AttemptError::Fatal(heed_error("begin write transaction", e)))?;
        let mut head = self.dbs.head_position(&txn).map_err(AttemptError::Fatal)?;
        let head_before = head;
        self.direct = self.index.in_each_commit()
            || batch
                .iter()
                .any(|r| matches!(r, Request::Truncate { .. }) && !r.is_excluded());
        let step = self.index.plan(head, self.direct);
        if let Some(step) = &step {
            let started = Instant::now();
            if let Err(e) = self.index.write(step, &self.dbs, &mut txn) {
                txn.abort();
                return Err(self.index_write_failed(e));
            }
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "lmdb: wrote pending stream index entries"
            );
        }
        self.heads.begin();
        for request in batch.iter_mut() {
            if request.is_excluded() {
                continue;
            }
            match self.apply(&mut txn, request, &mut head) {
                Ok(()) => {}
                Err(Abort::MapFull) => {
                    txn.abort();
                    if self.grow()? {
                        return Err(AttemptError::Retry);
                    }
                    request.reject(self.full());
                    return Err(AttemptError::Retry);
                }
                Err(Abort::Request(error)) => {
                    txn.abort();
                    request.reject(error);
                    return Err(AttemptError::Retry);
                }
            }
        }
        if let Some(step) = &step {
            let head_after = self.direct.then_some(head);
            if let Err(e) = self.index.record(step, &self.dbs, &mut txn, head_after) {
                txn.abort();
                return Err(self.index_write_failed(e));
            }
        }
        if !self.direct {
            self.stage(batch);
        }
        match txn.commit() {
            Ok(()) => {
                if let Some(step) = step {
                    self.index.committed(step);
                }
                Ok(head)
            }
            Err(error) => {
                if !self.direct {
                    self.index.pending.write().forget_above(head_before);
                }
                Err(self.commit_failed(error))
            }
        }
    }

    /// What a failure to write the index means for the attempt (whose transaction is
    /// aborted).
    fn index_write_failed(&mut self, error: heed::Error) -> AttemptError {
        match write_error("write the stream index", error) {
            Abort::MapFull => self.grow_or_fail(),
            Abort::Request(error) => AttemptError::Fatal(error),
        }
    }

    /// The map is full: grow it and replay the batch, or fail the batch when the map is at its
    /// maximum.
    fn grow_or_fail(&mut self) -> AttemptError {
        match self.grow() {
            Ok(true) => AttemptError::Retry,
            Ok(false) => AttemptError::Fatal(self.full()),
            Err(e) => e,
        }
    }

    /// The error of a write that does not fit in the map at its maximum size.
    fn full(&self) -> StoreError {
        StoreError::Full(format!(
            "the LMDB map is at its maximum size of {} bytes; raise LmdbOptions::max_map_size",
            self.max_map_size
        ))
    }

    /// Adds the index entries of the batch's applied appends to `Pending`.
    fn stage(&self, batch: &[Request]) {
        let mut pending = self.index.pending.write();
        for request in batch {
            match request {
                Request::Append {
                    key,
                    events,
                    outcome: Outcome::Applied(at),
                    ..
                } => pending.add(
                    key,
                    at.version_before + 1,
                    at.first_position,
                    events.len() as u64,
                ),
                Request::AppendMany {
                    items,
                    outcome: Outcome::Applied(()),
                    ..
                } => {
                    for item in items {
                        if let Some(Ok(at)) = &item.decided {
                            pending.add(
                                &item.key,
                                at.version_before + 1,
                                at.first_position,
                                item.events.len() as u64,
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// What a commit that failed with `error` means for the attempt.
    fn commit_failed(&mut self, error: heed::Error) -> AttemptError {
        match error {
            heed::Error::Mdb(MdbError::MapFull) => self.grow_or_fail(),
            e => AttemptError::Fatal(heed_error("commit", e)),
        }
    }

    /// Writes the whole pending index to the databases in a transaction of its own (when the
    /// store closes), flushed to disk.
    fn flush_index(&mut self) -> Result<(), StoreError> {
        if self.index.pending.read().len() == 0 {
            return Ok(());
        }
        const WHAT: &str = "write the stream index on close";
        let env = self.env.clone();
        let mut txn = env.write_txn().map_err(|e| heed_error(WHAT, e))?;
        let head = self.dbs.head_position(&txn)?;
        if let Some(step) = self.index.plan(head, true) {
            self.index
                .write(&step, &self.dbs, &mut txn)
                .and_then(|()| self.index.record(&step, &self.dbs, &mut txn, Some(head)))
                .map_err(|e| heed_error(WHAT, e))?;
            txn.commit().map_err(|e| heed_error(WHAT, e))?;
            self.index.committed(step);
        }
        if self.pipelined {
            self.env.force_sync().map_err(|e| heed_error(WHAT, e))?;
        }
        Ok(())
    }

    /// Applies one request inside `txn`, recording its outcome in it. A rejection is decided
    /// before anything is written.
    fn apply(
        &mut self,
        txn: &mut RwTxn<'_>,
        request: &mut Request,
        head: &mut u64,
    ) -> Result<(), Abort> {
        match request {
            Request::Append {
                stream,
                key,
                expected,
                events,
                outcome,
                ..
            } => {
                *outcome = match self.apply_append(txn, stream, key, *expected, events, head)? {
                    Ok(appended) => Outcome::Applied(appended),
                    Err(rejected) => Outcome::Rejected(rejected),
                };
                Ok(())
            }
            Request::AppendMany { items, outcome, .. } => {
                for item in items.iter_mut() {
                    let decided = self.apply_append(
                        txn,
                        &item.stream,
                        &item.key,
                        item.expected,
                        &item.events,
                        head,
                    )?;
                    if let Err(error) = &decided
                        && !matches!(error, StoreError::Conflict { .. })
                    {
                        // Not a decision about this append: the batch fails as a whole (the
                        // transaction is replayed without it).
                        return Err(Abort::Request(error.clone()));
                    }
                    item.decided = Some(decided);
                }
                *outcome = Outcome::Applied(());
                Ok(())
            }
            Request::Put {
                target,
                key,
                value,
                outcome,
                ..
            } => {
                let db = match target {
                    Target::Snapshots => self.dbs.snapshots,
                    Target::Checkpoints => self.dbs.checkpoints,
                };
                db.put(txn, key, value)
                    .map_err(|e| write_error("write a snapshot or checkpoint", e))?;
                *outcome = Outcome::Applied(());
                Ok(())
            }
            Request::Truncate {
                stream,
                key,
                before,
                outcome,
                ..
            } => {
                *outcome = match self
                    .apply_truncate(txn, stream, key, *before)
                    .map_err(|e| write_error("remove events", e))?
                {
                    Ok(removed) => Outcome::Applied(removed),
                    Err(refused) => Outcome::Rejected(refused),
                };
                Ok(())
            }
            Request::Prune {
                prefix,
                keep_last,
                outcome,
                ..
            } => {
                let doomed: Vec<Vec<u8>> = {
                    let iter = self
                        .dbs
                        .snapshots
                        .rev_prefix_iter(txn, prefix)
                        .map_err(|e| write_error("list snapshots", e))?;
                    let mut doomed = Vec::new();
                    for (n, entry) in iter.enumerate() {
                        let (key, _) = entry.map_err(|e| write_error("list snapshots", e))?;
                        if n >= *keep_last {
                            doomed.push(key.to_vec());
                        }
                    }
                    doomed
                };
                for key in doomed {
                    self.dbs
                        .snapshots
                        .delete(txn, &key)
                        .map_err(|e| write_error("delete a snapshot", e))?;
                }
                *outcome = Outcome::Applied(());
                Ok(())
            }
        }
    }

    /// Decides and (when it is accepted) writes one append inside `txn`, after the writes
    /// already made in it. `Ok(Err(..))` is a rejection (nothing written): a conflict, or a
    /// stream head that cannot be read.
    fn apply_append(
        &mut self,
        txn: &mut RwTxn<'_>,
        stream: &StreamId,
        key: &[u8],
        expected: ExpectedVersion,
        events: &[NewEvent],
        head: &mut u64,
    ) -> Result<Result<Appended, StoreError>, Abort> {
        let known = self
            .heads
            .get(key)
            .or_else(|| self.index.pending.read().version(key));
        let version = match known {
            Some(version) => version,
            None => match self.dbs.heads.get(txn, key) {
                Ok(version) => version.unwrap_or(0),
                Err(error @ heed::Error::Decoding(_)) => {
                    return Ok(Err(heed_error("read stream head", error)));
                }
                Err(e) => return Err(write_error("read stream head", e)),
            },
        };
        if let Err(conflict) = expected.check(version) {
            return Ok(Err(conflict));
        }
        let timestamp = Utc::now();
        let first_position = *head + 1;
        if events.is_empty() {
            return Ok(Ok(Appended {
                version_before: version,
                first_position,
                timestamp,
            }));
        }
        // The same bytes as the typed databases write (big-endian `u64`s), from the stack and
        // two scratch buffers: heed's `u64` codec would allocate for every key and value.
        let log = self.dbs.events.remap_key_type::<Bytes>();
        let index = self.dbs.index.remap_data_type::<Bytes>();
        let heads = self.dbs.heads.remap_data_type::<Bytes>();
        self.index_key.clear();
        self.index_key.extend_from_slice(key);
        for (i, event) in events.iter().enumerate() {
            let position = (first_position + i as u64).to_be_bytes();
            let sequence = version + 1 + i as u64;
            EventFields::of(stream, sequence, timestamp, event)
                .encode_into(&mut self.buf)
                .map_err(Abort::Request)?;
            log.put_with_flags(txn, PutFlags::APPEND, &position, &self.buf)
                .map_err(|e| write_error("append to the global log", e))?;
            if !self.direct {
                // The index entry is staged in `Pending` once the batch is applied.
                continue;
            }
            self.index_key.truncate(key.len());
            self.index_key.extend_from_slice(&sequence.to_be_bytes());
            index
                .put(txn, &self.index_key, &position)
                .map_err(|e| write_error("write the stream index", e))?;
        }
        let version_after = version + events.len() as u64;
        if self.direct {
            heads
                .put(txn, key, &version_after.to_be_bytes())
                .map_err(|e| write_error("write the stream head", e))?;
        }
        self.heads.stage(key, version_after);
        *head += events.len() as u64;
        Ok(Ok(Appended {
            version_before: version,
            first_position,
            timestamp,
        }))
    }

    /// Doubles the map (up to the maximum). `Ok(false)` when it is already at the maximum.
    fn grow(&mut self) -> Result<bool, AttemptError> {
        let current = self.env.info().map_size;
        if current >= self.max_map_size {
            return Ok(false);
        }
        let next = current.saturating_mul(2).min(self.max_map_size);
        let _exclusive = self.resize_gate.write();
        // SAFETY: LMDB allows changing the map size of an open environment when no transaction
        // is active in this process. The writer's own transaction was aborted before this call,
        // this thread is the only one that opens write transactions, and every read
        // transaction of this process is opened and closed under a shared hold of
        // `resize_gate`, which is held exclusively here. Other processes are kept out by the
        // store's lock file.
        #[allow(unsafe_code)]
        let resized = unsafe { self.env.resize(next) };
        resized.map_err(|e| AttemptError::Fatal(heed_error("grow the LMDB map", e)))?;
        tracing::info!(from = current, to = next, "lmdb: map full, grew the map");
        Ok(true)
    }
}

/// Maps an error raised while writing one request.
fn write_error(context: &str, error: heed::Error) -> Abort {
    match error {
        heed::Error::Mdb(MdbError::MapFull) => Abort::MapFull,
        heed::Error::Mdb(MdbError::TxnFull) => Abort::Request(StoreError::Full(format!(
            "{context}: the request is too large for one LMDB transaction"
        ))),
        other => Abort::Request(heed_error(context, other)),
    }
}
