//! [`MemoryStore`]: all three store traits in process memory (what the original Erlang project's ETS store was).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

mod lifecycle;

use crate::store::lifecycle::Truncation;
use crate::store::{
    AppendResult, Checkpoint, CheckpointStore, Envelope, ErasureRecord, EventFilter, EventStore,
    ExpectedVersion, FilteredPage, KeyStore, MemoryKeyStore, Metadata, NewEvent, RecordedEvent,
    Snapshot, SnapshotStore, StoreError, StreamId, SubjectKey, validate_append,
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
    /// Subject keys and erasure records, apart from the log.
    keys: MemoryKeyStore,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            log: RwLock::new(Log::default()),
            head: watch::Sender::new(0),
            snapshots: Mutex::default(),
            checkpoints: Mutex::default(),
            keys: MemoryKeyStore::new(),
        }
    }
}

/// The log in a compact form: each stream id and event type is stored once, and an event
/// keeps only what is its own. [`RecordedEvent`]s are built on read.
#[derive(Default)]
struct Log {
    /// The global log; the event at position `p` is at index `p - 1`.
    events: Vec<Stored>,
    /// Stream ids by number.
    streams: Vec<Arc<StreamId>>,
    /// Per stream: its number and the indexes into `events` of its events, in sequence order.
    index: HashMap<Arc<StreamId>, StreamIndex, foldhash::fast::RandomState>,
    /// Event type names, stored once each.
    types: HashMap<Arc<str>, (), foldhash::fast::RandomState>,
    /// The removals made (`EventStore::truncate_stream`).
    truncations: lifecycle::Truncations,
}

struct StreamIndex {
    number: u32,
    events: Vec<u32>,
    /// How many of the first `events` were removed.
    removed: usize,
}

struct Stored {
    stream: u32,
    event_version: u32,
    sequence: u64,
    timestamp: DateTime<Utc>,
    event_type: Arc<str>,
    /// The ids share their allocations with the writer's (the kernel gives all events of a
    /// command one id). A correlation or causation id that is the command id itself (the
    /// kernel's default) is kept as a flag of `same` instead of one more reference.
    command_id: Option<Arc<str>>,
    correlation_id: Option<Arc<str>>,
    causation_id: Option<Arc<str>>,
    /// [`SAME_CORRELATION`] and [`SAME_CAUSATION`].
    same: u8,
    /// Tags and metadata, when there are any.
    extra: Option<Box<(Vec<String>, Metadata)>>,
    payload: Box<[u8]>,
}

/// [`Stored::same`]: the correlation id is the command id.
const SAME_CORRELATION: u8 = 1;
/// [`Stored::same`]: the causation id is the command id.
const SAME_CAUSATION: u8 = 2;
/// [`Stored::same`]: the event was removed (`EventStore::truncate_stream`).
const REMOVED: u8 = 4;

/// `id` to keep beside `command`, and the flag `bit` when it is `command` itself.
fn shared_id(id: &Option<Arc<str>>, command: &Option<Arc<str>>, bit: u8) -> (Option<Arc<str>>, u8) {
    match (id, command) {
        (Some(id), Some(command)) if Arc::ptr_eq(id, command) => (None, bit),
        _ => (id.clone(), 0),
    }
}

impl Stored {
    /// The correlation or causation id kept in `id`, or the command id when `same` has `bit`.
    fn id(&self, id: &Option<Arc<str>>, bit: u8) -> Option<Arc<str>> {
        if self.same & bit != 0 {
            self.command_id.clone()
        } else {
            id.clone()
        }
    }
}

impl Log {
    fn version(&self, stream: &StreamId) -> u64 {
        self.index.get(stream).map_or(0, |s| s.events.len() as u64)
    }

    fn recorded(&self, index: usize) -> RecordedEvent {
        let e = &self.events[index];
        RecordedEvent {
            position: index as u64 + 1,
            stream: StreamId::clone(&self.streams[e.stream as usize]),
            sequence: e.sequence,
            event_type: e.event_type.to_string(),
            event_version: e.event_version,
            timestamp: e.timestamp,
            envelope: Envelope {
                command_id: e.command_id.clone(),
                correlation_id: e.id(&e.correlation_id, SAME_CORRELATION),
                causation_id: e.id(&e.causation_id, SAME_CAUSATION),
                tags: e.extra.as_ref().map(|x| x.0.clone()).unwrap_or_default(),
                metadata: e.extra.as_ref().map(|x| x.1.clone()).unwrap_or_default(),
            },
            payload: e.payload.to_vec(),
        }
    }

    fn intern(&mut self, event_type: &str) -> Arc<str> {
        if let Some((name, ())) = self.types.get_key_value(event_type) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(event_type);
        self.types.insert(name.clone(), ());
        name
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of positions in the store: the events written, removed ones included
    /// (see `EventStore::truncate_stream`).
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
        validate_append(stream, &events)?;
        let mut log = self.inner.log.write();
        let version = log.version(stream);
        expected.check(version)?;
        if events.is_empty() {
            return Ok(AppendResult::unchanged(version));
        }
        if log.events.len() + events.len() > u32::MAX as usize {
            return Err(StoreError::Full(
                "a MemoryStore holds at most 4,294,967,295 events".to_owned(),
            ));
        }
        let number = match log.index.get(stream) {
            Some(s) => s.number,
            None => {
                let number = u32::try_from(log.streams.len()).map_err(|_| {
                    StoreError::Full("a MemoryStore holds at most 2^32 streams".to_owned())
                })?;
                let id = Arc::new(stream.clone());
                log.streams.push(id.clone());
                log.index.insert(
                    id,
                    StreamIndex {
                        number,
                        events: Vec::new(),
                        removed: 0,
                    },
                );
                number
            }
        };
        // The store's time, only read when an event brings none of its own.
        let timestamp = if events.iter().all(|e| e.timestamp.is_some()) {
            DateTime::<Utc>::UNIX_EPOCH
        } else {
            Utc::now()
        };
        let first_index = log.events.len();
        for (i, event) in (0u64..).zip(&events) {
            let event_type = log.intern(&event.event_type);
            let envelope = &event.envelope;
            let extra = (!envelope.tags.is_empty() || !envelope.metadata.is_empty())
                .then(|| Box::new((envelope.tags.clone(), envelope.metadata.clone())));
            let command_id = &envelope.command_id;
            let (correlation_id, a) =
                shared_id(&envelope.correlation_id, command_id, SAME_CORRELATION);
            let (causation_id, b) = shared_id(&envelope.causation_id, command_id, SAME_CAUSATION);
            log.events.push(Stored {
                stream: number,
                event_version: event.event_version,
                sequence: version + 1 + i,
                timestamp: event.timestamp.unwrap_or(timestamp),
                event_type,
                command_id: command_id.clone(),
                correlation_id,
                causation_id,
                same: a | b,
                extra,
                payload: event.payload.as_slice().into(),
            });
        }
        let last_index = log.events.len();
        match log.index.get_mut(stream) {
            // Indexes fit in u32: the size check above keeps the log below u32::MAX events.
            Some(s) => s.events.extend((first_index..last_index).map(|i| i as u32)),
            None => unreachable!("the stream's index entry was created above"),
        }
        // Only told to someone listening: a watch channel wakes eight lists of waiters per
        // send, whether anyone waits or not. `subscribe` brings the value up to date first.
        if self.inner.head.receiver_count() > 0 {
            self.inner.head.send_replace(last_index as u64);
        }
        Ok(AppendResult::recorded(
            stream,
            version,
            first_index as u64 + 1..,
            timestamp,
            events,
        ))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        stream.validate()?;
        let log = self.inner.log.read();
        let Some(index) = log.index.get(stream) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from_sequence.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(index
            .events
            .iter()
            .skip(start.max(index.removed))
            .take(limit)
            .map(|&i| log.recorded(i as usize))
            .collect())
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.inner.log.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log.live(start, limit).map(|i| log.recorded(i)).collect())
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
        for i in log.live(start, limit) {
            page.scanned += 1;
            page.scanned_to = i as u64 + 1;
            if accept(&log.events[i].event_type) {
                page.events.push(log.recorded(i));
            }
        }
        Ok(page)
    }

    async fn read_all_matching(
        &self,
        from_position: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let log = self.inner.log.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut page = FilteredPage::default();
        for i in log.live(start, limit) {
            page.scanned += 1;
            page.scanned_to = i as u64 + 1;
            let stored = &log.events[i];
            if filter.matches_head(
                &log.streams[stored.stream as usize].aggregate_type,
                &stored.event_type,
            ) {
                let event = log.recorded(i);
                if filter.envelope.is_none_or(|f| f(&event)) {
                    page.events.push(event);
                }
            }
        }
        Ok(page)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        stream.validate()?;
        Ok(self.inner.log.read().version(stream))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.inner.log.read().events.len() as u64)
    }

    fn key_store(&self) -> Option<Arc<dyn KeyStore>> {
        Some(Arc::new(self.inner.keys.clone()))
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        stream.validate()?;
        self.inner.log.write().truncate(stream, before)
    }

    async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        Ok(self
            .inner
            .log
            .read()
            .truncations
            .values()
            .cloned()
            .collect())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        // Under the log's lock, so that no append runs between the refresh and the new
        // receiver being counted (an append sends only while someone listens).
        let log = self.inner.log.read();
        let head = log.events.len() as u64;
        self.inner.head.send_if_modified(|value| {
            let modified = *value != head;
            *value = head;
            modified
        });
        self.inner.head.subscribe()
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        snapshot.stream.validate()?;
        self.inner
            .snapshots
            .lock()
            .entry(snapshot.stream.clone())
            .or_default()
            .insert(snapshot.version, snapshot);
        Ok(())
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        stream.validate()?;
        Ok(self
            .inner
            .snapshots
            .lock()
            .get(stream)
            .and_then(|s| s.last_key_value().map(|(_, snap)| snap.clone())))
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        stream.validate()?;
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

/// The store's keys, kept apart from its log (a [`MemoryKeyStore`]).
#[async_trait]
impl KeyStore for MemoryStore {
    async fn subject_key(&self, subject: &str) -> Result<SubjectKey, StoreError> {
        self.inner.keys.subject_key(subject).await
    }
    async fn keys(&self, subjects: &[String]) -> Result<HashMap<String, SubjectKey>, StoreError> {
        self.inner.keys.keys(subjects).await
    }
    async fn forget(&self, subject: &str, erased_by: &str) -> Result<ErasureRecord, StoreError> {
        self.inner.keys.forget(subject, erased_by).await
    }
    async fn erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        self.inner.keys.erasures().await
    }
    async fn export_keys(&self) -> Result<Vec<(String, SubjectKey)>, StoreError> {
        self.inner.keys.export_keys().await
    }
    async fn import_key(&self, subject: &str, key: SubjectKey) -> Result<(), StoreError> {
        self.inner.keys.import_key(subject, key).await
    }
}
