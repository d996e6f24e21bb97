//! A model test of the dead-letter queue (`ErrorPolicy::Park`): random scripts of appends to a
//! few streams, a handler broken and fixed per stream, retries and skips, against a model
//! where each stream is applied in order unless its head is parked. After every step the
//! projection's state (what each stream applied, in order) and its parked events must equal
//! the model's, and retries and skips must succeed or fail as the model says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use es_core::prelude::*;
use es_core::projection::{ErrorPolicy, ProjectionError};
use proptest::prelude::*;

const STREAMS: usize = 3;

/// The streams whose events the handler fails on (one test in this binary, so cases reset it).
static BROKEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

#[derive(Debug, Default, Clone)]
struct Applied {
    /// Sequences applied, per stream id, in order.
    by_stream: BTreeMap<String, Vec<u64>>,
}

impl Projection for Applied {
    const NAME: &'static str = "applied";
    fn accepts(event_type: &str) -> bool {
        event_type == "Noted"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let id = &event.stream.aggregate_id;
        if BROKEN.lock().unwrap().contains(id) {
            return Err(ProjectionError::Handler(Arc::new(std::io::Error::other(
                "broken",
            ))));
        }
        self.by_stream
            .entry(id.clone())
            .or_default()
            .push(event.sequence);
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Step {
    Append(usize),
    Break(usize, bool),
    Retry(usize),
    /// Skip the parked event at this index (modulo how many are parked).
    Skip(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..STREAMS).prop_map(Step::Append),
        2 => (0..STREAMS, any::<bool>()).prop_map(|(s, b)| Step::Break(s, b)),
        2 => (0..STREAMS).prop_map(Step::Retry),
        1 => (0..STREAMS, 0usize..8).prop_map(|(s, i)| Step::Skip(s, i)),
    ]
}

/// One stream in the model.
#[derive(Debug, Default, Clone)]
struct Model {
    next: u64,
    applied: Vec<u64>,
    /// Parked sequences, in order.
    parked: Vec<u64>,
    broken: bool,
}

fn sid(s: usize) -> String {
    format!("s{s}")
}

async fn run(script: Vec<Step>) {
    BROKEN.lock().unwrap().clear();
    let store = MemoryStore::new();
    let k = Kernel::builder().store(store.clone()).build().unwrap();
    let handle = k
        .projections()
        .start::<Applied>(ProjectionOptions::default().error_policy(ErrorPolicy::park()))
        .await
        .unwrap();
    let mut model = vec![Model::default(); STREAMS];
    // Position of each (stream, sequence).
    let mut positions: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    for step in script {
        match step {
            Step::Append(s) => {
                let m = &mut model[s];
                m.next += 1;
                let done = store
                    .append(
                        &StreamId::new("note", sid(s)),
                        ExpectedVersion::Any,
                        vec![NewEvent::new("Noted", b"{}".to_vec())],
                    )
                    .await
                    .unwrap();
                positions.insert((s, m.next), done.events[0].position);
                handle.wait_for(done.events[0].position).await.unwrap();
                if m.broken || !m.parked.is_empty() {
                    m.parked.push(m.next);
                } else {
                    m.applied.push(m.next);
                }
            }
            Step::Break(s, on) => {
                model[s].broken = on;
                let mut broken = BROKEN.lock().unwrap();
                if on {
                    broken.insert(sid(s));
                } else {
                    broken.remove(&sid(s));
                }
            }
            Step::Retry(s) => {
                let got = k
                    .projections()
                    .retry("applied", &format!("note/{}", sid(s)))
                    .await;
                let m = &mut model[s];
                if m.parked.is_empty() || m.broken {
                    assert!(got.is_err(), "retry of {s} should fail: {got:?}");
                } else {
                    assert_eq!(got.unwrap(), m.parked.len());
                    m.applied.append(&mut m.parked);
                }
            }
            Step::Skip(s, i) => {
                let m = &mut model[s];
                let key = format!("note/{}", sid(s));
                if m.parked.is_empty() {
                    let got = k.projections().skip("applied", &key, 1, "r").await;
                    assert!(got.is_err(), "nothing parked in {s}: {got:?}");
                } else {
                    let seq = m.parked.remove(i % m.parked.len());
                    k.projections()
                        .skip("applied", &key, positions[&(s, seq)], "r")
                        .await
                        .unwrap();
                }
            }
        }
        // The projection agrees with the model.
        let state = handle.state().await;
        let letters = k.projections().dead_letters("applied").await.unwrap();
        for (s, m) in model.iter().enumerate() {
            let applied = state.by_stream.get(&sid(s)).cloned().unwrap_or_default();
            assert_eq!(applied, m.applied, "stream {s} applied");
            let parked: Vec<u64> = letters
                .iter()
                .filter(|l| l.is_parked() && l.key == format!("note/{}", sid(s)))
                .map(|l| l.position)
                .collect();
            let expected: Vec<u64> = m.parked.iter().map(|q| positions[&(s, *q)]).collect();
            assert_eq!(parked, expected, "stream {s} parked");
        }
        let parked_total: usize = model.iter().map(|m| m.parked.len()).sum();
        assert_eq!(handle.status().dead_letters, parked_total as u64);
    }
    k.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dead_letters_follow_the_model(script in proptest::collection::vec(step(), 1..40)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(script));
    }
}
