//! Changing an event: the bank's `Withdrawn` gains a field.
//!
//! Release 1 ([`crate::bank::Withdrawn`], `bank.withdrawn` version 1) stored `{"amount": 10}`.
//! Release 2 ([`Withdrawn`] here, version 2) also records the channel a withdrawal went
//! through. Events already stored stay as they are: the store keeps their name and version 1,
//! and [`withdrawn_v1`] lifts each one to version 2 when it is read (by the aggregate, by
//! projections, by the testkit), before it is deserialized. Events written by release 2 are
//! stored at version 2 and deserialize directly.
//!
//! `examples/evolution/withdrawn_v1.jsonl` holds events written by release 1 (regenerate it
//! with `cargo run --example evolution -- --write-fixture FILE`); the example and
//! `tests/evolution.rs` replay it with this release.

use std::collections::BTreeMap;

use es_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::bank::{BankError, Deposit, Deposited};

/// Take money out, through a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Withdraw {
    /// The amount, in cents.
    pub amount: u64,
    /// Where: `"atm"`, `"branch"`, `"online"`.
    pub channel: String,
}

/// Money was taken out (version 2: with its channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bank.withdrawn", version = 2, upcast(from = 1, with = withdrawn_v1))]
pub struct Withdrawn {
    /// The amount, in cents.
    pub amount: u64,
    /// The channel. Withdrawals of release 1 were all made at a branch.
    pub channel: String,
}

/// Lifts a version-1 `bank.withdrawn` (`{"amount": n}`) to version 2: release 1 only had
/// branch withdrawals.
///
/// # Errors
///
/// A payload that is not a JSON object.
pub fn withdrawn_v1(mut v: Value) -> Result<Value, UpcastError> {
    let Some(object) = v.as_object_mut() else {
        return Err(UpcastError::new(format!(
            "a version-1 withdrawal must be a JSON object, got {v}"
        )));
    };
    object.insert("channel".to_owned(), "branch".into());
    Ok(v)
}

/// A bank account of release 2: its balance, and what was withdrawn per channel.
///
/// The state gained a field too, so snapshots of release 1 must not be restored:
/// `snapshot_version = 2` makes the kernel discard them and replay the stream.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    /// The balance, in cents.
    pub balance: u64,
    /// The amount withdrawn per channel. (`default`, so a release-1 snapshot would even
    /// deserialize, with an empty map: only `snapshot_version` keeps it from being restored.)
    #[serde(default)]
    pub withdrawn_by_channel: BTreeMap<String, u64>,
}

#[aggregate(name = "bank_account", error = BankError, snapshot_version = 2)]
impl BankAccount {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(Deposited { amount: cmd.amount })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, BankError> {
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        if cmd.amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: cmd.amount,
            });
        }
        Ok(Withdrawn {
            amount: cmd.amount,
            channel: cmd.channel,
        })
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }

    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
        *self
            .withdrawn_by_channel
            .entry(e.channel.clone())
            .or_default() += e.amount;
    }
}

/// Withdrawals per channel over every account, through the same upcaster.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ChannelTotals {
    /// Amount per channel.
    pub by_channel: BTreeMap<String, u64>,
}

#[projection(name = "bank_withdrawals_by_channel")]
impl ChannelTotals {
    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        *self
            .by_channel
            .entry(e.payload.channel.clone())
            .or_default() += e.payload.amount;
    }
}

/// One line of the fixture: a stored event of one account, as release 1 wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixtureLine {
    /// The account id (the stream is `bank_account/<account>`).
    pub account: String,
    /// The stored event name.
    pub event_type: String,
    /// The stored version.
    pub event_version: u32,
    /// The stored payload.
    pub payload: Value,
}

/// Reads the fixture's lines into stored events per account, in order.
///
/// # Errors
///
/// A line that is not a [`FixtureLine`], with its number.
pub fn read_fixture(text: &str) -> Result<Vec<(String, NewEvent)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let line: FixtureLine =
                serde_json::from_str(line).map_err(|e| format!("fixture line {}: {e}", i + 1))?;
            let payload = line.payload.to_string().into_bytes();
            let event = NewEvent::new(line.event_type, payload).version(line.event_version);
            Ok((line.account, event))
        })
        .collect()
}

/// Appends the fixture's events to `store`, each account's in one append.
///
/// # Errors
///
/// The store's.
pub async fn load_fixture(
    store: &(impl EventStore + ?Sized),
    events: Vec<(String, NewEvent)>,
) -> Result<(), es_core::StoreError> {
    let mut by_account: BTreeMap<String, Vec<NewEvent>> = BTreeMap::new();
    for (account, event) in events {
        by_account.entry(account).or_default().push(event);
    }
    for (account, events) in by_account {
        let stream = StreamId::new("bank_account", account);
        store.append(&stream, ExpectedVersion::Any, events).await?;
    }
    Ok(())
}
