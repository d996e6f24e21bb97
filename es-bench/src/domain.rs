//! The benchmark's own domain pieces: a second aggregate type's event (for W5) and the two
//! W5 projections.

use es_core::prelude::*;
use es_examples::bank::{Deposited, Withdrawn};
use serde::{Deserialize, Serialize};

/// The aggregate type of the W5 streams that are not bank accounts.
pub const AUDIT_TYPE: &str = "audit_log";

/// An event of the second W5 aggregate type (`audit_log`): no bank projection handles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "audit.noted")]
pub struct Noted {
    /// A sequence number.
    pub n: u64,
    /// Free text, so the payload is about as large as a real one.
    pub note: String,
}

/// W5's selective projection: handles `bank.withdrawn` only (10% of the W5 log).
#[derive(Debug, Default, Clone)]
pub struct Withdrawals {
    /// Withdrawals seen.
    pub count: u64,
    /// Their total amount.
    pub amount: u64,
}

#[projection(name = "bench_withdrawals")]
impl Withdrawals {
    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        self.count += 1;
        self.amount += e.payload.amount;
    }
}

/// The aggregate type of the W5 vault streams (`--w5-vaults`): 10% of the log, `Deposited`
/// events under the bank's event name.
pub const VAULT_TYPE: &str = "vault";

/// W5's aggregate-filtered projection (`--w5-vaults`): `Deposited` events of vault streams only
/// (10% of the log); the bank's deposits share the event name and are told apart by the
/// stream's aggregate type, before their payload is decoded.
#[derive(Debug, Default, Clone)]
pub struct VaultDeposits {
    /// Vault deposits seen.
    pub count: u64,
    /// Their total amount.
    pub amount: u64,
}

#[projection(name = "bench_vault_deposits", aggregate = "vault")]
impl VaultDeposits {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        self.count += 1;
        self.amount += e.payload.amount;
    }
}

/// W5's full projection: handles every event type of the W5 log.
#[derive(Debug, Default, Clone)]
pub struct EveryEvent {
    /// `Deposited` events seen.
    pub deposited: u64,
    /// `bank.withdrawn` events seen.
    pub withdrawn: u64,
    /// `audit.noted` events seen.
    pub noted: u64,
    /// Net bank amount (deposits minus withdrawals).
    pub net: i64,
}

#[projection(name = "bench_every_event")]
impl EveryEvent {
    #[on]
    fn deposited(&mut self, e: &Recorded<Deposited>) {
        self.deposited += 1;
        self.net += e.payload.amount as i64;
    }

    #[on]
    fn withdrawn(&mut self, e: &Recorded<Withdrawn>) {
        self.withdrawn += 1;
        self.net -= e.payload.amount as i64;
    }

    #[on]
    fn noted(&mut self, e: &Recorded<Noted>) {
        self.noted += 1;
        let _ = e.payload.n;
    }
}

/// W4's evolved event: the log holds it at version 1 (`{"amount": n}`); the code reads version 3
/// through a two-step upcaster chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench.counted", version = 3,
        upcast(from = 1, with = counted_v1), upcast(from = 2, with = counted_v2))]
pub struct Counted {
    /// The amount counted.
    pub amount: u64,
    /// Its unit (version 2).
    pub unit: String,
    /// A note (version 3).
    pub note: Option<String>,
}

/// Version 1 had no unit.
fn counted_v1(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    v["unit"] = "EUR".into();
    Ok(v)
}

/// Version 2 had no note.
fn counted_v2(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    v["note"] = serde_json::Value::Null;
    Ok(v)
}

/// W4's command for the evolved stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Count {
    /// The amount.
    pub amount: u64,
}

/// W4's aggregate for the evolved stream: the sum of its `Counted` events.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    /// The sum.
    pub total: u64,
}

#[aggregate(name = "bench_tally")]
impl Tally {
    #[command]
    fn count(&self, cmd: Count) -> Result<Counted, std::convert::Infallible> {
        Ok(Counted {
            amount: cmd.amount,
            unit: "EUR".into(),
            note: None,
        })
    }

    #[apply]
    fn counted(&mut self, e: &Counted) {
        self.total += e.amount;
    }
}
