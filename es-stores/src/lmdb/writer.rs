//! The group-commit writer: one thread owns every LMDB write transaction.
//!
//! It blocks for the first pending request, drains whatever else is queued (up to a request and
//! byte budget), applies the requests in arrival order inside one write transaction, commits once
//! and then answers every request. Each append's expected version is checked inside the
//! transaction, so earlier requests of the same batch are visible to later ones; a rejected
//! request writes nothing and does not affect its neighbours.
//!
//! When LMDB reports `MDB_MAP_FULL`, the transaction is aborted, the map grows (doubling, up to
//! the configured maximum) and the whole batch is replayed; callers never see it. Past the maximum
//! the request that did not fit gets [`StoreError::Full`] and the rest of the batch is replayed
//! without it.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use es_core::store::{AppendResult, ExpectedVersion, NewEvent, StoreError, StreamId};
use heed::{Env, MdbError, PutFlags, RwTxn, WithoutTls};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{self, EventFields};
use super::{Dbs, heed_error};

/// Requests per transaction at most.
const MAX_BATCH_REQUESTS: usize = 4096;
/// Payload bytes per transaction at most (keeps LMDB's dirty-page list well below its limit);
/// a single larger request still runs, alone.
const MAX_BATCH_BYTES: usize = 32 << 20;

/// The answer channel of a request.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write, sent to the writer thread.
pub(super) enum Request {
    /// Append events to a stream.
    Append {
        stream: StreamId,
        key: Vec<u8>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: Reply<AppendResult>,
    },
    /// Put one key/value (snapshots and checkpoints).
    Put {
        target: Target,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: Reply<()>,
    },
    /// Delete all but the `keep_last` newest snapshots under `prefix`.
    Prune {
        prefix: Vec<u8>,
        keep_last: usize,
        reply: Reply<()>,
    },
}

impl Request {
    fn size(&self) -> usize {
        match self {
            Request::Append { events, .. } => events
                .iter()
                .map(|e| e.payload.len() + e.event_type.len() + 64)
                .sum(),
            Request::Put { key, value, .. } => key.len() + value.len(),
            Request::Prune { .. } => 64,
        }
    }

    /// Answers with an error (a caller that went away does not need its answer).
    fn fail(self, error: StoreError) {
        match self {
            Request::Append { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Put { reply, .. } | Request::Prune { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Which database a [`Request::Put`] writes to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Snapshots,
    Checkpoints,
}

/// What applying one request inside the transaction decided.
#[derive(Clone)]
enum Planned {
    /// Not applied (yet).
    Pending,
    /// Appended: the stream was at `version_before`, the first event got `first_position`.
    Appended {
        version_before: u64,
        first_position: u64,
        timestamp: chrono::DateTime<Utc>,
    },
    /// A put or prune that was applied.
    Written,
    /// Decided against, nothing written: answered with this error.
    Rejected(StoreError),
}

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
pub(super) struct Writer {
    pub(super) env: Env<WithoutTls>,
    pub(super) dbs: Dbs,
    pub(super) requests: mpsc::Receiver<Request>,
    pub(super) head: Arc<watch::Sender<u64>>,
    /// Held exclusively while resizing the map, shared by every reader of this process.
    pub(super) resize_gate: Arc<RwLock<()>>,
    pub(super) max_map_size: usize,
    /// Whether to flush once more when closing (the durability mode does not flush each commit).
    pub(super) sync_on_close: bool,
    /// Scratch buffer for encoding records.
    pub(super) buf: Vec<u8>,
}

impl Writer {
    /// Runs until every [`super::LmdbStore`] handle is gone and the queue is drained.
    pub(super) fn run(mut self) {
        tracing::debug!(path = %self.env.path().display(), "lmdb writer started");
        let mut carry: Option<Request> = None;
        loop {
            let first = match carry.take() {
                Some(request) => request,
                None => match self.requests.blocking_recv() {
                    Some(request) => request,
                    None => break,
                },
            };
            let mut bytes = first.size();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES {
                match self.requests.try_recv() {
                    Ok(request) => {
                        let size = request.size();
                        if bytes + size > MAX_BATCH_BYTES {
                            carry = Some(request);
                            break;
                        }
                        bytes += size;
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        if self.sync_on_close
            && let Err(error) = self.env.force_sync()
        {
            tracing::warn!(%error, "lmdb: final flush on close failed");
        }
        tracing::debug!(path = %self.env.path().display(), "lmdb writer stopped");
    }

    /// Writes one batch in one transaction and answers every request in it.
    fn process(&mut self, batch: Vec<Request>) {
        let started = Instant::now();
        // Requests excluded from the batch for good (they failed while writing).
        let mut excluded: Vec<Option<StoreError>> = vec![None; batch.len()];
        let mut plans = vec![Planned::Pending; batch.len()];
        let head = loop {
            plans.iter_mut().for_each(|p| *p = Planned::Pending);
            match self.attempt(&batch, &excluded, &mut plans) {
                Ok(head) => break head,
                Err(AttemptError::Retry) => {
                    for (slot, plan) in excluded.iter_mut().zip(&plans) {
                        if let (None, Planned::Rejected(e)) = (&slot, plan)
                            && !matches!(e, StoreError::Conflict { .. })
                        {
                            *slot = Some(e.clone());
                        }
                    }
                }
                Err(AttemptError::Fatal(error)) => {
                    tracing::error!(%error, requests = batch.len(), "lmdb: group commit failed");
                    for (request, slot) in batch.into_iter().zip(excluded) {
                        request.fail(slot.unwrap_or_else(|| error.clone()));
                    }
                    return;
                }
            }
        };
        self.head.send_if_modified(|current| {
            let changed = *current != head;
            *current = head;
            changed
        });
        tracing::trace!(
            requests = batch.len(),
            head,
            elapsed_us = started.elapsed().as_micros() as u64,
            "lmdb: group commit"
        );
        for ((request, plan), slot) in batch.into_iter().zip(plans).zip(excluded) {
            answer(request, plan, slot);
        }
    }

    /// One try at writing the batch: applies every request not excluded, then commits.
    /// Returns the head position after the commit.
    fn attempt(
        &mut self,
        batch: &[Request],
        excluded: &[Option<StoreError>],
        plans: &mut [Planned],
    ) -> Result<u64, AttemptError> {
        // A handle of our own, so that the transaction does not borrow `self`.
        let env = self.env.clone();
        let mut txn = env
            .write_txn()
            .map_err(|e| AttemptError::Fatal(heed_error("begin write transaction", e)))?;
        let mut head = match self.dbs.events.last(&txn) {
            Ok(last) => match last {
                Some((key, _)) => {
                    codec::be_u64(key, "global log key").map_err(AttemptError::Fatal)?
                }
                None => 0,
            },
            Err(e) => return Err(AttemptError::Fatal(heed_error("read head position", e))),
        };
        for (i, request) in batch.iter().enumerate() {
            if excluded[i].is_some() {
                continue;
            }
            match self.apply(&mut txn, request, &mut head) {
                Ok(plan) => plans[i] = plan,
                Err(Abort::MapFull) => {
                    txn.abort();
                    if self.grow()? {
                        return Err(AttemptError::Retry);
                    }
                    plans[i] = Planned::Rejected(StoreError::Full(format!(
                        "the LMDB map is at its maximum size of {} bytes; raise \
                         LmdbOptions::max_map_size",
                        self.max_map_size
                    )));
                    return Err(AttemptError::Retry);
                }
                Err(Abort::Request(error)) => {
                    txn.abort();
                    plans[i] = Planned::Rejected(error);
                    return Err(AttemptError::Retry);
                }
            }
        }
        match txn.commit() {
            Ok(()) => Ok(head),
            Err(heed::Error::Mdb(MdbError::MapFull)) => {
                if self.grow()? {
                    Err(AttemptError::Retry)
                } else {
                    Err(AttemptError::Fatal(StoreError::Full(format!(
                        "the LMDB map is at its maximum size of {} bytes; raise \
                         LmdbOptions::max_map_size",
                        self.max_map_size
                    ))))
                }
            }
            Err(e) => Err(AttemptError::Fatal(heed_error("commit", e))),
        }
    }

    /// Applies one request inside `txn`. A rejection is decided before anything is written.
    fn apply(
        &mut self,
        txn: &mut RwTxn<'_>,
        request: &Request,
        head: &mut u64,
    ) -> Result<Planned, Abort> {
        match request {
            Request::Append {
                stream,
                key,
                expected,
                events,
                ..
            } => {
                let version = match self.dbs.heads.get(txn, key) {
                    Ok(Some(bytes)) => match codec::be_u64(bytes, "stream head") {
                        Ok(v) => v,
                        Err(e) => return Ok(Planned::Rejected(e)),
                    },
                    Ok(None) => 0,
                    Err(e) => return Err(write_error("read stream head", e)),
                };
                if let Err(conflict) = expected.check(version) {
                    return Ok(Planned::Rejected(conflict));
                }
                let timestamp = Utc::now();
                let first_position = *head + 1;
                for (i, event) in events.iter().enumerate() {
                    let position = first_position + i as u64;
                    let sequence = version + 1 + i as u64;
                    EventFields {
                        stream,
                        sequence,
                        timestamp,
                        event_type: &event.event_type,
                        event_version: event.event_version,
                        metadata: &event.metadata,
                        payload: &event.payload,
                    }
                    .encode_into(&mut self.buf);
                    let position_key = position.to_be_bytes();
                    self.dbs
                        .events
                        .put_with_flags(txn, PutFlags::APPEND, &position_key, &self.buf)
                        .map_err(|e| write_error("append to the global log", e))?;
                    self.dbs
                        .index
                        .put(txn, &codec::suffixed(key, sequence), &position_key)
                        .map_err(|e| write_error("write the stream index", e))?;
                }
                let version_after = version + events.len() as u64;
                self.dbs
                    .heads
                    .put(txn, key, &version_after.to_be_bytes())
                    .map_err(|e| write_error("write the stream head", e))?;
                *head += events.len() as u64;
                Ok(Planned::Appended {
                    version_before: version,
                    first_position,
                    timestamp,
                })
            }
            Request::Put {
                target, key, value, ..
            } => {
                let db = match target {
                    Target::Snapshots => self.dbs.snapshots,
                    Target::Checkpoints => self.dbs.checkpoints,
                };
                db.put(txn, key, value)
                    .map_err(|e| write_error("write a snapshot or checkpoint", e))?;
                Ok(Planned::Written)
            }
            Request::Prune {
                prefix, keep_last, ..
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
                Ok(Planned::Written)
            }
        }
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

/// Sends the outcome of one request.
fn answer(request: Request, plan: Planned, excluded: Option<StoreError>) {
    if let Some(error) = excluded {
        request.fail(error);
        return;
    }
    match (request, plan) {
        (request, Planned::Rejected(error)) => request.fail(error),
        (request, Planned::Pending) => request.fail(StoreError::Backend {
            backend: "lmdb",
            message: "request was not applied".into(),
        }),
        (
            Request::Append {
                stream,
                events,
                reply,
                ..
            },
            Planned::Appended {
                version_before,
                first_position,
                timestamp,
            },
        ) => {
            let version = version_before + events.len() as u64;
            let recorded = events
                .into_iter()
                .enumerate()
                .map(|(i, event)| {
                    let i = i as u64;
                    event.record(
                        stream.clone(),
                        version_before + 1 + i,
                        first_position + i,
                        timestamp,
                    )
                })
                .collect();
            let _ = reply.send(Ok(AppendResult {
                version,
                events: recorded,
            }));
        }
        (Request::Put { reply, .. } | Request::Prune { reply, .. }, _) => {
            let _ = reply.send(Ok(()));
        }
        (request @ Request::Append { .. }, Planned::Written) => {
            request.fail(StoreError::Backend {
                backend: "lmdb",
                message: "append was not applied".into(),
            });
        }
    }
}
