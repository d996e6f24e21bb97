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
