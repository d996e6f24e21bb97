//! [`MemoryStore`]: all three store traits in process memory (the seed's ETS store).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::store::{
    AppendResult, Checkpoint, CheckpointStore, EventStore, ExpectedVersion, FilteredPage, NewEvent,
    RecordedEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};

/// An in-memory event, snapshot and checkpoint store, for tests, demos and benchmarks.
///
/// Positions are gapless, appends are atomic and checked against the expected version, and
/// `Clone` shares one store. Nothing survives the process.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::store::EventStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let stream = StreamId::new("bank_account", "acc-1");
/// let done = store
///     .append(&stream, ExpectedVersion::NoStream, vec![NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())])
///     .await?;
/// assert_eq!(done.version, 1);
/// assert_eq!(store.read_all(0, 10).await?.len(), 1);
/// # Ok::<(), es_core::store::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: RwLock<Log>,
    head: watch::Sender<u64>,
    snapshots: Mutex<HashMap<StreamId, BTreeMap<u64, Snapshot>>>,
    checkpoints: Mutex<HashMap<String, Checkpoint>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            log: RwLock::new(Log::default()),
            head: watch::Sender::new(0),
            snapshots: Mutex::default(),
            checkpoints: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct Log {
    /// The global log; the event at position `p` is at index `p - 1`.
    events: Vec<RecordedEvent>,
    /// Per stream, the indexes into `events` of its events, in sequence order.
    streams: HashMap<StreamId, Vec<usize>, foldhash::fast::RandomState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of events in the store.
    pub fn len(&self) -> usize {
        self.inner.log.read().events.len()
    }

    /// Whether the store holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("events", &self.len())
            .finish()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let mut log = self.inner.log.write();
        let Log {
            events: all,
            streams,
        } = &mut *log;
        let version = streams.get(stream).map_or(0, Vec::len) as u64;
        expected.check(version)?;
        if events.is_empty() {
            return Ok(AppendResult {
                version,
                events: Vec::new(),
            });
        }
        let index = match streams.get_mut(stream) {
            Some(index) => index,
            None => streams.entry(stream.clone()).or_default(),
        };
        let timestamp = Utc::now();
        let mut recorded = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let position = all.len() as u64 + 1;
            let event = event.record(stream.clone(), version + 1 + i as u64, position, timestamp);
            index.push(all.len());
            recorded.push(event.clone());
            all.push(event);
        }
        let head = all.len() as u64;
        self.inner.head.send_replace(head);
        Ok(AppendResult {
            version: index.len() as u64,
            events: recorded,
        })
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.inner.log.read();
        let Some(index) = log.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from_sequence.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(index
            .iter()
            .skip(start)
            .take(limit)
            .map(|&i| log.events[i].clone())
            .collect())
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.inner.log.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log.events.iter().skip(start).take(limit).cloned().collect())
    }

    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        let log = self.inner.log.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut page = FilteredPage::default();
        for event in log.events.iter().skip(start).take(limit) {
            page.scanned += 1;
            page.scanned_to = event.position;
            if accept(&event.event_type) {
                page.events.push(event.clone());
            }
        }
        Ok(page)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .log
            .read()
            .streams
            .get(stream)
            .map_or(0, Vec::len) as u64)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.inner.log.read().events.len() as u64)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner
            .snapshots
            .lock()
            .entry(snapshot.stream.clone())
            .or_default()
            .insert(snapshot.version, snapshot);
        Ok(())
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        Ok(self
            .inner
            .snapshots
            .lock()
            .get(stream)
            .and_then(|s| s.last_key_value().map(|(_, snap)| snap.clone())))
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        let mut snapshots = self.inner.snapshots.lock();
        if let Some(versions) = snapshots.get_mut(stream) {
            while versions.len() > keep_last {
                versions.pop_first();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for MemoryStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.inner.checkpoints.lock().get(name).cloned())
    }

    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.inner
            .checkpoints
            .lock()
            .insert(name.to_owned(), Checkpoint { position, state });
        Ok(())
    }
}
