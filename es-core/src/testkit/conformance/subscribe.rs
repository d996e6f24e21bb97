//! Head notifications: `subscribe()` wakes after appends.

use std::time::Duration;

use crate::store::ExpectedVersion;

use super::{ConformanceStore, append_ok, events, stream};

/// `subscribe()` wakes after an append with a head covering the new event.
pub async fn subscribe_wakes_after_append<S: ConformanceStore>(store: S) {
    let mut rx = store.subscribe();
    let start = *rx.borrow_and_update();
    assert_eq!(start, 0);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            append_ok(&store, &stream("a"), ExpectedVersion::Any, events(0..2)).await
        })
    };
    let woke = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await;
    assert!(
        matches!(woke, Ok(Ok(()))),
        "subscribe() did not wake after an append"
    );
    let done = match writer.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let last = done.last_position().unwrap_or(0);
    let reached = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|h| *h >= last)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "subscribe() never reached position {last}"
    );
    drop(reached);
    let late = store.subscribe();
    assert!(
        *late.borrow() >= last,
        "a new subscriber starts at the head"
    );
    // With nobody listening, appends go on; the next subscriber still starts at the head.
    drop((rx, late));
    let unheard = append_ok(&store, &stream("b"), ExpectedVersion::Any, events(0..3)).await;
    let last = unheard.last_position().unwrap_or(0);
    let mut again = store.subscribe();
    assert!(
        *again.borrow_and_update() >= last,
        "a subscriber after appends nobody listened to starts at the head"
    );
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            append_ok(&store, &stream("b"), ExpectedVersion::Any, events(3..4)).await
        })
    };
    let woke = tokio::time::timeout(Duration::from_secs(10), again.changed()).await;
    assert!(
        matches!(woke, Ok(Ok(()))),
        "a new subscriber is woken by the next append"
    );
    if let Err(e) = writer.await {
        std::panic::resume_unwind(e.into_panic());
    }
}
