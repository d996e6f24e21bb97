//! The worked example of changing an event: release 1's committed events
//! (`examples/evolution/withdrawn_v1.jsonl`) replayed by release 2 on a durable store, by the
//! aggregate, a projection and the testkit; release 1's snapshots are not restored.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::prelude::*;
use es_core::testkit::AggregateTest;
use es_examples::evolution::{
    BankAccount, ChannelTotals, Withdraw, Withdrawn, load_fixture, read_fixture,
};

const FIXTURE: &str = include_str!("../evolution/withdrawn_v1.jsonl");

#[test]
fn the_fixture_holds_release_ones_events() {
    let events = read_fixture(FIXTURE).unwrap();
    let withdrawn: Vec<u32> = events
        .iter()
        .filter(|(_, e)| e.event_type == "bank.withdrawn")
        .map(|(_, e)| e.event_version)
        .collect();
    assert_eq!(withdrawn, [1, 1, 1]);
}

#[cfg(feature = "lmdb")]
#[tokio::test]
async fn release_two_reads_release_ones_events_on_lmdb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        // Release 1 wrote the events, and a snapshot of its state (no channel map).
        let store = es_stores::LmdbStore::open(&path).unwrap();
        load_fixture(&store, read_fixture(FIXTURE).unwrap())
            .await
            .unwrap();
        let kernel = Kernel::builder()
            .store(store.clone())
            .snapshot_every(1)
            .register::<es_examples::bank::BankAccount>()
            .build()
            .unwrap();
        kernel
            .dispatch::<es_examples::bank::BankAccount>(
                "acc-1",
                es_examples::bank::Deposit { amount: 1 },
            )
            .await
            .unwrap();
        kernel.shutdown().await;
    }
    let store = es_stores::LmdbStore::open(&path).unwrap();
    let stream = StreamId::new("bank_account", "acc-1");
    let old = store.load_latest(&stream).await.unwrap().unwrap();
    let old_state: serde_json::Value = serde_json::from_slice(&old.state).unwrap();
    assert_eq!(
        (old.version, &old_state["balance"]),
        (4, &serde_json::json!(71))
    );
    assert!(
        old_state.get("withdrawn_by_channel").is_none(),
        "release 1's snapshot has no channel map: {old_state}"
    );
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<BankAccount>()
        .build()
        .unwrap();
    let account = kernel.state::<BankAccount>("acc-1").await.unwrap();
    assert_eq!(account.balance, 71);
    assert_eq!(
        account.withdrawn_by_channel["branch"], 30,
        "replayed, not restored"
    );
    let done = kernel
        .dispatch::<BankAccount>(
            "acc-1",
            Withdraw {
                amount: 5,
                channel: "atm".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.events[0].event_version, 2);
    kernel.shutdown().await;
    let totals: ChannelTotals = es_core::projection::run_once(&store).await.unwrap();
    assert_eq!(totals.by_channel["branch"], 37);
    assert_eq!(totals.by_channel["atm"], 5);
}

#[test]
fn the_testkit_replays_the_fixture() {
    let acc_1 = read_fixture(FIXTURE)
        .unwrap()
        .into_iter()
        .filter(|(account, _)| account == "acc-1")
        .map(|(_, event)| event);
    AggregateTest::<BankAccount>::given_stored(acc_1)
        .unwrap()
        .when(Withdraw {
            amount: 70,
            channel: "online".into(),
        })
        .then_expect_events([Withdrawn {
            amount: 70,
            channel: "online".into(),
        }
        .into()]);
}
