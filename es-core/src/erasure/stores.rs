//! The event and snapshot stores the kernel sees: its stores behind an [`ErasureLayer`].

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::layer::ErasureLayer;
use crate::store::StoreFuture;
use crate::store::lifecycle::Truncation;
use crate::store::{
    AppendResult, BatchAppend, BatchOutcome, EventFilter, EventStore, ExpectedVersion,
    FilteredPage, KeyStore, NewEvent, RecordedEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};

impl ErasureLayer {
    /// `inner` as the kernel sees it: appends seal the open PII fields, reads open the sealed
    /// ones with this layer's keys (their replacements once forgotten).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::erasure::ErasureLayer;
    /// use es_core::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let layer = Arc::new(ErasureLayer::new(store.key_store()));
    /// let readable = layer.event_store(Arc::new(store.clone()));
    /// let open = br#"{"name":{"$pii":{"v":1,"s":"c-1","f":"Named.name","p":"Ada","r":""}}}"#;
    /// let stream = StreamId::new("customer", "c-1");
    /// let event = NewEvent::new("Named", open.to_vec());
    /// readable.append(&stream, ExpectedVersion::NoStream, vec![event]).await?;
    /// let raw = store.read_all(1, 1).await?;
    /// assert!(!String::from_utf8_lossy(&raw[0].payload).contains("Ada"));
    /// let read = readable.read_all(1, 1).await?;
    /// assert_eq!(read[0].payload, br#"{"name":"Ada"}"#);
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_store(self: &Arc<Self>, inner: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
        Arc::new(SealedEvents {
            inner,
            layer: self.clone(),
        })
    }
}

/// An event store whose appends seal PII fields and whose reads open them.
pub(crate) struct SealedEvents {
    pub(crate) inner: Arc<dyn EventStore>,
    pub(crate) layer: Arc<ErasureLayer>,
}

impl SealedEvents {
    /// Seals the events of one append; returns the plain payloads to answer with.
    async fn seal(&self, events: &mut [NewEvent]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut plain = Vec::with_capacity(events.len());
        for event in events.iter_mut() {
            match self.layer.seal(&event.payload).await? {
                Some((sealed, open)) => {
                    event.payload = sealed;
                    plain.push(Some(open));
                }
                None => plain.push(None),
            }
        }
        Ok(plain)
    }
}

impl SealedEvents {
    /// An append of events of which some may hold PII fields: sealed first, opened again in
    /// the answer.
    async fn append_sealed(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let plain = self.seal(&mut events).await?;
        let mut result = self.inner.append(stream, expected, events).await?;
        unseal(&mut result, plain);
        Ok(result)
    }
}

/// Puts the plain payloads back into an append's answer.
fn unseal(result: &mut AppendResult, plain: Vec<Option<Vec<u8>>>) {
    for (event, plain) in result.events.iter_mut().zip(plain) {
        if let Some(plain) = plain {
            event.payload = plain;
        }
    }
}

#[async_trait]
impl EventStore for SealedEvents {
    /// Events without the PII marker (the common case) go to the inner store as they are, in
    /// its own future: no extra allocation, no extra poll, nothing to put back in the answer.
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        stream: &'life1 StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> StoreFuture<'async_trait, AppendResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if events
            .iter()
            .any(|event| ErasureLayer::may_seal(&event.payload))
        {
            Box::pin(self.append_sealed(stream, expected, events))
        } else {
            self.inner.append(stream, expected, events)
        }
    }

    async fn append_many(&self, mut batch: Vec<BatchAppend>) -> Result<BatchOutcome, StoreError> {
        let sealing = batch
            .iter()
            .flat_map(|append| &append.events)
            .any(|event| ErasureLayer::may_seal(&event.payload));
        if !sealing {
            return self.inner.append_many(batch).await;
        }
        let mut plain = Vec::with_capacity(batch.len());
        for append in &mut batch {
            plain.push(self.seal(&mut append.events).await?);
        }
        let mut outcomes = self.inner.append_many(batch).await?;
        for (outcome, plain) in outcomes.iter_mut().zip(plain) {
            if let Ok(result) = outcome {
                unseal(result, plain);
            }
        }
        Ok(outcomes)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_stream(stream, from_sequence, limit).await?;
        self.layer.open_events(&mut events).await?;
        Ok(events)
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_all(from_position, limit).await?;
        self.layer.open_events(&mut events).await?;
        Ok(events)
    }

    async fn read_all_filtered(
        &self,
        from_position: u64,
        limit: usize,
        accept: for<'t> fn(&'t str) -> bool,
    ) -> Result<FilteredPage, StoreError> {
        let mut page = self
            .inner
            .read_all_filtered(from_position, limit, accept)
            .await?;
        self.layer.open_events(&mut page.events).await?;
        Ok(page)
    }

    async fn read_all_matching(
        &self,
        from_position: u64,
        limit: usize,
        filter: EventFilter,
    ) -> Result<FilteredPage, StoreError> {
        let mut page = self
            .inner
            .read_all_matching(from_position, limit, filter)
            .await?;
        self.layer.open_events(&mut page.events).await?;
        Ok(page)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.subscribe()
    }

    fn key_store(&self) -> Option<Arc<dyn KeyStore>> {
        self.layer.key_store().cloned()
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        self.inner.truncate_stream(stream, before).await
    }

    async fn truncations(&self) -> Result<Vec<Truncation>, StoreError> {
        self.inner.truncations().await
    }
}

/// A snapshot store whose saves seal PII fields of the state and whose loads open them.
pub(crate) struct SealedSnapshots {
    pub(crate) inner: Arc<dyn SnapshotStore>,
    pub(crate) layer: Arc<ErasureLayer>,
}

#[async_trait]
impl SnapshotStore for SealedSnapshots {
    async fn save(&self, mut snapshot: Snapshot) -> Result<(), StoreError> {
        if let Some((sealed, _)) = self.layer.seal(&snapshot.state).await? {
            snapshot.state = sealed;
        }
        self.inner.save(snapshot).await
    }

    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let Some(mut snapshot) = self.inner.load_latest(stream).await? else {
            return Ok(None);
        };
        if let Some(open) = self.layer.open(&snapshot.state).await? {
            snapshot.state = open;
        }
        Ok(Some(snapshot))
    }

    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        self.inner.prune(stream, keep_last).await
    }
}
