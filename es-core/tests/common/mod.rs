//! A hand-written aggregate (no macros) and store test doubles for the kernel tests.
#![allow(dead_code)]

pub mod recorder;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use es_core::event::EventError;
use es_core::store::{AppendResult, Checkpoint};
use es_core::{
    Aggregate, CheckpointStore, Event, EventSet, EventStore, ExpectedVersion, MemoryStore,
    NewEvent, RecordedEvent, Snapshot, SnapshotStore, StoreError, StreamId,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposited {
    pub amount: u64,
}
impl Event for Deposited {
    const NAME: &'static str = "Deposited";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Withdrawn {
    pub amount: u64,
}
impl Event for Withdrawn {
    const NAME: &'static str = "Withdrawn";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursed;
impl Event for Cursed {
    const NAME: &'static str = "Cursed";
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Deposited(Deposited),
    Withdrawn(Withdrawn),
    Cursed(Cursed),
}

impl EventSet for AccountEvent {
    const NAMES: &'static [&'static str] = &["Deposited", "Withdrawn", "Cursed"];
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Deposited(_) => Deposited::NAME,
            AccountEvent::Withdrawn(_) => Withdrawn::NAME,
            AccountEvent::Cursed(_) => Cursed::NAME,
        }
    }
    fn event_version(&self) -> u32 {
        1
    }
    fn encode(&self) -> Result<Vec<u8>, EventError> {
        match self {
            AccountEvent::Deposited(e) => e.encode_payload(),
            AccountEvent::Withdrawn(e) => e.encode_payload(),
            AccountEvent::Cursed(e) => e.encode_payload(),
        }
    }
    fn decode(event_type: &str, version: u32, payload: &[u8]) -> Result<Self, EventError> {
        match event_type {
            "Deposited" => Deposited::decode_payload(version, payload).map(Self::Deposited),
            "Withdrawn" => Withdrawn::decode_payload(version, payload).map(Self::Withdrawn),
            "Cursed" => Cursed::decode_payload(version, payload).map(Self::Cursed),
            other => Err(EventError::UnknownEvent {
                event_type: other.to_owned(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
    /// Two deposits in one command.
    Split(u64, u64),
    /// Accepted, no events.
    Touch,
    /// Panics in `handle`.
    PanicInHandle,
    /// Records an event whose `apply` panics.
    Curse,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountError {
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub applied: u64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Deposit(amount) => {
                Ok(vec![AccountEvent::Deposited(Deposited { amount })])
            }
            AccountCommand::Withdraw(amount) if amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: amount,
                })
            }
            AccountCommand::Withdraw(amount) => {
                Ok(vec![AccountEvent::Withdrawn(Withdrawn { amount })])
            }
            AccountCommand::Split(a, b) => Ok(vec![
                AccountEvent::Deposited(Deposited { amount: a }),
                AccountEvent::Deposited(Deposited { amount: b }),
            ]),
            AccountCommand::Touch => Ok(vec![]),
            AccountCommand::PanicInHandle => panic!("handle exploded"),
            AccountCommand::Curse => Ok(vec![AccountEvent::Cursed(Cursed)]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        self.applied += 1;
        match event {
            AccountEvent::Deposited(e) => self.balance += e.amount,
            AccountEvent::Withdrawn(e) => self.balance -= e.amount,
            AccountEvent::Cursed(_) => panic!("apply exploded"),
        }
    }
}

/// A store wrapper that counts events read per stream and can be told to fail appends.
#[derive(Clone, Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub fail_appends: Arc<AtomicBool>,
    /// Fails this many appends, then succeeds.
    pub fail_next: Arc<AtomicUsize>,
    pub stream_events_read: Arc<AtomicUsize>,
    pub appends: Arc<AtomicUsize>,
}

#[async_trait]
impl EventStore for FlakyStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let failing_next = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing_next || self.fail_appends.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "test double: disk unplugged".into(),
            ));
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream, from, limit).await?;
        self.stream_events_read
            .fetch_add(events.len(), Ordering::SeqCst);
        Ok(events)
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe()
    }
}

#[async_trait]
impl SnapshotStore for FlakyStore {
    async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        SnapshotStore::save(&self.inner, snapshot).await
    }
    async fn load_latest(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_latest(stream).await
    }
    async fn prune(&self, stream: &StreamId, keep_last: usize) -> Result<(), StoreError> {
        self.inner.prune(stream, keep_last).await
    }
}

#[async_trait]
impl CheckpointStore for FlakyStore {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        CheckpointStore::load(&self.inner, name).await
    }
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        CheckpointStore::save(&self.inner, name, position, state).await
    }
}

pub fn stream(id: &str) -> StreamId {
    StreamId::new(Account::TYPE, id)
}
