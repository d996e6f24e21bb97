//! The gap problem: commits that come out of position order never make a reader skip an event.

use std::time::Duration;

use es_core::store::{EventStore, ExpectedVersion, RecordedEvent};
use sqlx::Connection;

use crate::postgres_common::{ev, s, store_alone};

/// Inserts one event the way an append does, in an explicit transaction left open.
async fn begin_raw_append(conn: &mut sqlx::PgConnection, schema: &str, id: &str) -> u64 {
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    let (position,): (i64,) = sqlx::query_as(&format!(
        "INSERT INTO \"{schema}\".events \
             (position, stream_type, stream_id, sequence, event_type, event_version, payload) \
         VALUES ((pg_current_xact_id()::text::int8 << 16) + 1, 'raw', $1, 1, 'Raw', 1, '\\x00') \
         RETURNING position"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    u64::try_from(position).unwrap()
}

/// The gap problem, step by step: writers whose commits come out of position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commit_with_lower_position_is_not_skipped() {
    let (store, guard) = store_alone("latecommit").await;
    for round in 0..5 {
        let mut slow = sqlx::PgConnection::connect(&guard.url).await.unwrap();
        let start = store.head_position().await.unwrap() + 1;
        // A takes its position first and stays open.
        let a = begin_raw_append(&mut slow, &guard.schema, &format!("a{round}")).await;
        // B (the store, a later transaction) takes a higher position and commits.
        let b = store
            .append(
                &s(&format!("b{round}")),
                ExpectedVersion::NoStream,
                vec![ev(round)],
            )
            .await
            .unwrap();
        let b = b.events[0].position;
        assert!(a < b, "A's position {a} is below B's {b}");
        // While A is open, readers must not see B: reading B would make them skip A.
        let read = store.read_all(start, 100).await.unwrap();
        assert!(
            read.is_empty(),
            "reader saw {read:?} while a lower position was in flight"
        );
        assert!(store.head_position().await.unwrap() < a);
        sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
        let read: Vec<u64> = store
            .read_all(start, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(read, vec![a, b], "round {round}");
    }
    // The other order: A starts (lower xid) and commits last, after B wrote.
    let start = store.head_position().await.unwrap() + 1;
    let mut slow = sqlx::PgConnection::connect(&guard.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut slow)
        .await
        .unwrap();
    let b = store
        .append(&s("late-b"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap()
        .events[0]
        .position;
    assert!(store.read_all(start, 100).await.unwrap().is_empty());
    let (a,): (i64,) = sqlx::query_as(&format!(
        "INSERT INTO \"{}\".events \
             (position, stream_type, stream_id, sequence, event_type, event_version, payload) \
         VALUES ((pg_current_xact_id()::text::int8 << 16) + 1, 'raw', 'late-a', 1, 'Raw', 1, '\\x00') \
         RETURNING position",
        guard.schema
    ))
    .fetch_one(&mut slow)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    let read: Vec<u64> = store
        .read_all(start, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(read, vec![a as u64, b]);
}

/// The gap problem under load: store writers on two pools plus raw writers that hold their
/// transactions open for a random while; a reader tails the log. Every event is seen exactly
/// once, in position order. Run in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tailing_reader_sees_every_event_once_under_out_of_order_commits() {
    let (store, guard) = store_alone("tailing").await;
    let other = guard.another_node(8).await;
    for round in 0..3u64 {
        const WRITERS: u64 = 16;
        const EACH: u64 = 20;
        const RAW: u64 = 4;
        const RAW_EACH: u64 = 10;
        let total = (WRITERS * EACH + RAW * RAW_EACH) as usize;
        let start = store.head_position().await.unwrap() + 1;
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen: Vec<RecordedEvent> = Vec::new();
                let mut next = start;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while seen.len() < total {
                    assert!(tokio::time::Instant::now() < deadline, "reader timed out");
                    let page = store.read_all(next, 13).await.unwrap();
                    if page.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    for e in page {
                        assert!(e.position >= next);
                        next = e.position + 1;
                        seen.push(e);
                    }
                }
                seen
            })
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = if w % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let stream = s(&format!("r{round}-w{w}"));
                for i in 0..EACH {
                    store
                        .append(&stream, ExpectedVersion::Exact(i), vec![ev(i)])
                        .await
                        .unwrap();
                }
            }));
        }
        for r in 0..RAW {
            let url = guard.url.clone();
            let schema = guard.schema.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                for i in 0..RAW_EACH {
                    begin_raw_append(&mut conn, &schema, &format!("raw-{round}-{r}-{i}")).await;
                    let hold = (r * 7 + i * 13) % 25;
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let seen = reader.await.unwrap();
        let all = store.read_all(start, usize::MAX).await.unwrap();
        assert_eq!(all.len(), total, "round {round}");
        assert_eq!(
            seen, all,
            "round {round}: the tailing reader skipped or reordered events"
        );
    }
}
