//! Runner leases: which are held, read without taking any, as every node sees them.

use std::time::Duration;

use es_core::store::{CheckpointStore, Lease};

use crate::postgres_common::store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_sees_which_leases_are_held_and_asking_takes_none() {
    let (a, guard) = store("leases_held").await;
    let b = guard.another_node(4).await;
    let names: Vec<String> = ["p#member/0", "p#member/1", "p#member/2"]
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    assert_eq!(a.leases_held(&names).await.unwrap(), Some(vec![false; 3]));

    let Lease::Acquired(held) = a.try_lease(&names[1]).await.unwrap() else {
        panic!("a free lease must be granted");
    };
    for node in [&a, &b] {
        assert_eq!(
            node.leases_held(&names).await.unwrap(),
            Some(vec![false, true, false])
        );
    }
    // Reading took nothing: the free ones are still free, the held one still held elsewhere.
    assert!(matches!(
        b.try_lease(&names[1]).await.unwrap(),
        Lease::HeldElsewhere
    ));
    let Lease::Acquired(other) = b.try_lease(&names[0]).await.unwrap() else {
        panic!("reading must not have taken lease 0");
    };
    assert_eq!(
        a.leases_held(&names).await.unwrap(),
        Some(vec![true, true, false])
    );

    // A released lease shows free again (the release runs on the lease's own task).
    drop(held);
    drop(other);
    let mut free = false;
    for _ in 0..50 {
        if a.leases_held(&names).await.unwrap() == Some(vec![false; 3]) {
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(free, "released leases still show as held");

    // Another schema's lease of the same name is another lease.
    let (c, _other_guard) = store("leases_held_other").await;
    let Lease::Acquired(_elsewhere) = c.try_lease(&names[2]).await.unwrap() else {
        panic!("a free lease must be granted");
    };
    assert_eq!(a.leases_held(&names).await.unwrap(), Some(vec![false; 3]));
}

/// `RunnerLease::release` returns only once the server has given the lock up: another node
/// takes the lease at its first try, with no wait in between (a kernel's shutdown, which
/// releases its runners' leases this way, leaves them free for a tool that runs next).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_free_when_release_returns() {
    let (a, guard) = store("leases_release").await;
    let b = guard.another_node(4).await;
    for round in 0..20 {
        let name = format!("runner-{round}");
        let Lease::Acquired(held) = a.try_lease(&name).await.unwrap() else {
            panic!("a free lease must be granted");
        };
        assert!(matches!(
            b.try_lease(&name).await.unwrap(),
            Lease::HeldElsewhere
        ));
        held.release().await;
        let Lease::Acquired(_taken) = b.try_lease(&name).await.unwrap() else {
            panic!("round {round}: the lease is still held after release returned");
        };
    }
}
