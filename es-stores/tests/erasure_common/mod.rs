//! A domain with personal data for the erasure tests at rest: accounts whose holder name is
//! `#[pii]` in the events and in the state (so snapshots hold it too), and a projection with a
//! persisted state (a checkpoint) that counts the accounts.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use es_core::prelude::*;
use es_core::projection::{ProjectionError, ProjectionOptions};
use es_core::store::Store;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenAccount {
    pub customer: String,
    pub holder: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rename {
    pub holder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct AccountOpened {
    pub customer: String,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    pub holder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct HolderRenamed {
    pub customer: String,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    pub holder: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, Pii)]
pub struct Account {
    pub customer: String,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    pub holder: String,
    pub renames: u64,
}

#[aggregate(name = "account")]
impl Account {
    #[command]
    fn open(&self, c: OpenAccount) -> Result<AccountOpened, std::convert::Infallible> {
        Ok(AccountOpened {
            customer: c.customer,
            holder: c.holder,
        })
    }
    #[command]
    fn rename(&self, c: Rename) -> Result<HolderRenamed, std::convert::Infallible> {
        Ok(HolderRenamed {
            customer: self.customer.clone(),
            holder: c.holder,
        })
    }
    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
        self.customer = e.customer.clone();
        self.holder = e.holder.clone();
    }
    #[apply]
    fn renamed(&mut self, e: &HolderRenamed) {
        self.holder = e.holder.clone();
        self.renames += 1;
    }
}

/// How many accounts were opened and renamed (persisted in its checkpoint).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counts {
    pub opened: u64,
    pub renamed: u64,
    /// The length of the holder names read (so the projection really reads them).
    pub letters: u64,
}

impl Projection for Counts {
    const NAME: &'static str = "counts";
    fn accepts(event_type: &str) -> bool {
        event_type == "AccountOpened" || event_type == "HolderRenamed"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type == "AccountOpened" {
            self.opened += 1;
            self.letters += Recorded::<AccountOpened>::decode(event)?
                .payload
                .holder
                .len() as u64;
        } else {
            self.renamed += 1;
            self.letters += Recorded::<HolderRenamed>::decode(event)?
                .payload
                .holder
                .len() as u64;
        }
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

/// One account per customer: its holder name, and a second name it is renamed to.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub renamed: String,
    pub forget: bool,
}

/// Distinctive random names (12 to 24 letters and digits) and which customers are forgotten.
pub fn people() -> impl Strategy<Value = Vec<Person>> {
    prop::collection::vec(
        ("[A-Za-z0-9]{12,24}", "[A-Za-z0-9]{12,24}", any::<bool>()).prop_map(
            |(name, renamed, forget)| Person {
                name,
                renamed,
                forget,
            },
        ),
        1..5,
    )
}

/// Runs the domain on `store` through a kernel (snapshots every 2 events, the projection
/// persisted), forgets the chosen customers, and checks what the kernel then reads.
pub async fn run(store: Arc<dyn Store>, people: &[Person]) {
    let kernel = Kernel::builder()
        .event_store(store.clone())
        .snapshot_store(store.clone())
        .checkpoint_store(store.clone())
        .snapshot_every(2)
        .register::<Account>()
        .build()
        .unwrap();
    let counts = kernel
        .projections()
        .start::<Counts>(ProjectionOptions::default())
        .await
        .unwrap();
    for (i, p) in people.iter().enumerate() {
        let id = format!("a-{i}");
        let customer = format!("c-{i}");
        kernel
            .dispatch::<Account>(
                &id,
                OpenAccount {
                    customer,
                    holder: p.name.clone(),
                },
            )
            .await
            .unwrap();
        kernel
            .dispatch::<Account>(
                &id,
                Rename {
                    holder: p.renamed.clone(),
                },
            )
            .await
            .unwrap();
    }
    counts
        .wait_for(store.head_position().await.unwrap())
        .await
        .unwrap();
    for (i, p) in people.iter().enumerate() {
        if p.forget {
            kernel.forget(&format!("c-{i}")).await.unwrap();
        }
    }
    for (i, p) in people.iter().enumerate() {
        let state = kernel.state::<Account>(&format!("a-{i}")).await.unwrap();
        let expected = if p.forget {
            "<erased>"
        } else {
            p.renamed.as_str()
        };
        assert_eq!(state.holder, expected);
    }
    // Let the snapshot writes land before the kernel stops.
    tokio::time::sleep(Duration::from_millis(20)).await;
    kernel.shutdown().await;
}

/// The first plaintext name found in `bytes`, if any.
pub fn leaked<'a>(bytes: &[u8], people: &'a [Person]) -> Option<&'a str> {
    people
        .iter()
        .flat_map(|p| [p.name.as_str(), p.renamed.as_str()])
        .find(|name| bytes.windows(name.len()).any(|w| w == name.as_bytes()))
}
