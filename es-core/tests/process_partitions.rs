//! A process manager run in partitions: each instance (keyed by correlation id) lives in the
//! partition its key hashes to, each partition keeps its own checkpoint (`process:NAME#i/n`),
//! and starting with another number of partitions is refused.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::recorder::Rec;
use common::{Account, AccountCommand};
use es_core::prelude::*;
use es_core::process::CHECKPOINT_PREFIX;
use es_core::projection::{ProjectionError, partition_checkpoint};
use serde::{Deserialize, Serialize};

/// One instance per deposit (keyed by its correlation id), never finished.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Audit {
    deposits: u32,
}

impl ProcessManager for Audit {
    const NAME: &'static str = "audit";
    fn accepts(event_type: &str) -> bool {
        event_type == "Deposited"
    }
    fn starts(_: &RecordedEvent) -> bool {
        true
    }
    fn handle(&mut self, _: &RecordedEvent, _: &mut Commands) -> Result<(), ProjectionError> {
        self.deposits += 1;
        Ok(())
    }
}

#[tokio::test]
async fn instances_are_spread_over_partitions_with_a_checkpoint_each() {
    let store = MemoryStore::new();
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<Account>()
        .build()
        .unwrap();
    let last = deposit_to_30_accounts(&kernel).await;
    let options = ProjectionOptions::default().partitions(3);
    let audit = kernel
        .process_managers()
        .start::<Audit>(options.clone())
        .await
        .unwrap();
    audit.wait_for(last).await.unwrap();
    assert_eq!(audit.instances().await, 30);
    let status = audit.status();
    assert_eq!(status.partitions.len(), 3);
    assert_eq!(status.events_handled, 30);
    assert_eq!(status.partitions[1].name, "audit#1/3");
    assert!(
        status.partitions.iter().all(|p| p.instances > 0),
        "every partition has instances: {status:?}"
    );
    audit.stop().await;
    let base = format!("{CHECKPOINT_PREFIX}audit");
    for index in 0..3 {
        let saved = CheckpointStore::load(&store, &partition_checkpoint(&base, index, 3))
            .await
            .unwrap()
            .expect("a checkpoint per partition");
        assert_eq!(saved.position, last);
    }

    // A restart resumes each partition; nothing is handled twice.
    let audit = kernel
        .process_managers()
        .start::<Audit>(options)
        .await
        .unwrap();
    audit.wait_for(last).await.unwrap();
    assert_eq!(audit.instances().await, 30);
    assert_eq!(audit.status().events_handled, 0);
    audit.stop().await;

    let err = kernel
        .process_managers()
        .start::<Audit>(ProjectionOptions::default())
        .await
        .expect_err("another number of partitions is refused");
    assert!(err.to_string().contains("partitions(3)"), "{err}");
    kernel.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_reports_its_own_gauges() {
    let rec = Rec::new();
    let kernel = rec.build(
        Kernel::builder()
            .store(MemoryStore::new())
            .register::<Account>(),
    );
    let last = deposit_to_30_accounts(&kernel).await;
    let audit = rec
        .with(
            kernel
                .process_managers()
                .start::<Audit>(ProjectionOptions::default().partitions(3)),
        )
        .await
        .unwrap();
    audit.wait_for(last).await.unwrap();
    let status = audit.status();
    let mut total = 0.0;
    for (index, partition) in status.partitions.iter().enumerate() {
        let labels = format!("partition={index}/3,process_manager=audit");
        let instances = rec.gauge(&format!("es_process_instances{{{labels}}}"));
        assert_eq!(instances, partition.instances as f64, "{labels}");
        total += instances;
        let handled = rec.counter(&format!("es_process_events_handled_total{{{labels}}}"));
        // One deposit per instance: a partition handled as many events as it has instances.
        assert_eq!(handled, partition.instances as u64, "{labels}");
    }
    assert_eq!(
        total, 30.0,
        "the partitions' gauges add up to every instance"
    );
    audit.stop().await;
    kernel.shutdown().await;
}

/// One deposit to each of 30 accounts; the position of the last.
async fn deposit_to_30_accounts(kernel: &Kernel) -> u64 {
    let mut last = 0;
    for i in 0..30u64 {
        let done = kernel
            .dispatch::<Account>(&format!("a-{i}"), AccountCommand::Deposit(1))
            .await
            .unwrap();
        last = done.events[0].position;
    }
    last
}
