//! Criterion micro-benchmarks of the hot paths: event encode/decode, kernel dispatch on the
//! memory store, memory-store appends, and the LMDB store's reads of short streams and of the
//! log's head (what a kernel loading a fresh aggregate and a projection following the log do).
//!
//! ```text
//! cargo bench -p es-bench --bench hot_paths
//! ```

use std::fmt::Display;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use es_core::prelude::*;
use es_examples::bank::{BankAccount, BankAccountEvent, Deposit, Deposited, Withdraw, Withdrawn};

/// Unwraps a setup result, or ends the benchmark with a clear message.
fn ok<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => {
            eprintln!("hot_paths: {what}: {e}");
            std::process::exit(1);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    ok(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "start a tokio runtime",
    )
}

/// The events as a store records them.
fn recorded(events: &[&BankAccountEvent]) -> Vec<RecordedEvent> {
    let store = MemoryStore::new();
    let stream = StreamId::new("bank_account", "acc-1");
    let new = events
        .iter()
        .map(|e| ok(e.to_new_event(), "encode"))
        .collect();
    let done = ok(
        runtime().block_on(store.append(&stream, ExpectedVersion::Any, new)),
        "append",
    );
    done.events
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(1));
    let deposited = BankAccountEvent::from(Deposited { amount: 1_234 });
    let withdrawn = BankAccountEvent::from(Withdrawn { amount: 56 });
    group.bench_function("encode_deposited", |b| {
        b.iter(|| ok(black_box(&deposited).to_new_event(), "encode"))
    });
    group.bench_function("encode_withdrawn", |b| {
        b.iter(|| ok(black_box(&withdrawn).to_new_event(), "encode"))
    });
    let stored = recorded(&[&deposited, &withdrawn]);
    for (name, event) in ["decode_deposited", "decode_withdrawn"].iter().zip(&stored) {
        group.bench_function(*name, |b| {
            b.iter(|| ok(BankAccountEvent::from_recorded(black_box(event)), "decode"))
        });
    }
    // Side by side with `decode_withdrawn`: the decode path as it was before upcasters (a name
    // compare, a version check, `serde_json::from_slice`), written out here.
    if let Some(event) = stored.get(1) {
        group.bench_function("decode_withdrawn_before_upcasters", |b| {
            b.iter(|| ok(decode_before_upcasters(black_box(event)), "decode"))
        });
    }
    // A version-1 payload of a version-3 event through a two-step chain.
    let old = Counted::decode_payload(1, br#"{"amount":1}"#);
    ok(old, "decode through the chain");
    group.bench_function("decode_v1_through_two_upcasters", |b| {
        b.iter(|| {
            ok(
                Counted::decode_payload(1, black_box(br#"{"amount":1}"#)),
                "decode",
            )
        })
    });
    group.finish();
}

/// A version-3 event whose version-1 payloads go through two upcasters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Event)]
#[event(name = "bench.counted", version = 3,
        upcast(from = 1, with = counted_v1), upcast(from = 2, with = counted_v2))]
struct Counted {
    amount: u64,
    unit: String,
    note: Option<String>,
}

fn counted_v1(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    v["unit"] = "EUR".into();
    Ok(v)
}

fn counted_v2(mut v: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
    v["note"] = serde_json::Value::Null;
    Ok(v)
}

/// The decode path of a current-version event before upcasters, for comparison.
/// As the generated enum did: each variant's name in turn, then that event's decode.
fn decode_before_upcasters(event: &RecordedEvent) -> Result<BankAccountEvent, String> {
    if event.event_type == <Deposited as Event>::NAME {
        return Err("a deposit".to_owned());
    }
    if event.event_type != <Withdrawn as Event>::NAME {
        return Err(format!("unknown event {}", event.event_type));
    }
    if event.event_version > <Withdrawn as Event>::VERSION {
        return Err("newer version".to_owned());
    }
    serde_json::from_slice::<Withdrawn>(&event.payload)
        .map(BankAccountEvent::Withdrawn)
        .map_err(|e| e.to_string())
}

/// Benchmarks `name` in `group`: each iteration awaits `f(state.clone())`, all of them inside
/// one task of `rt` (not from the thread blocking on it, which would add a cross-thread wake-up
/// to every iteration).
fn bench_in_task<S, F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    state: S,
    f: F,
) where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (state, f) = (state.clone(), f.clone());
            let task = rt.spawn(async move {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    f(state.clone()).await;
                }
                start.elapsed()
            });
            ok(rt.block_on(task), "benchmark task")
        })
    });
}

fn dispatch(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryStore::new();
    let kernel = ok(
        rt.block_on(async {
            Kernel::builder()
                .store(store.clone())
                .register::<BankAccount>()
                .build()
        }),
        "build the kernel",
    );
    let mut group = c.benchmark_group("kernel");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    bench_in_task(
        &mut group,
        &rt,
        "dispatch_deposit_awaited",
        kernel.clone(),
        |kernel| async move {
            let done = kernel
                .dispatch::<BankAccount>("acc-1", Deposit { amount: 1 })
                .await;
            black_box(ok(done, "dispatch"));
        },
    );
    bench_in_task(
        &mut group,
        &rt,
        "dispatch_rejected_awaited",
        kernel.clone(),
        |kernel| async move {
            let result = kernel
                .dispatch::<BankAccount>("acc-2", Withdraw { amount: 1 })
                .await;
            black_box(result.is_err());
        },
    );
    group.finish();
    rt.block_on(kernel.shutdown());
}

fn memory_append(c: &mut Criterion) {
    let rt = runtime();
    let event = ok(
        BankAccountEvent::from(Deposited { amount: 1 }).to_new_event(),
        "encode",
    );
    let mut group = c.benchmark_group("memory_store");
    group.measurement_time(Duration::from_secs(3));
    for batch in [1usize, 100] {
        let store = MemoryStore::new();
        group.throughput(Throughput::Elements(batch as u64));
        let name = format!("append_batch_{batch}");
        let events = vec![event.clone(); batch];
        bench_in_task(&mut group, &rt, &name, store, move |store| {
            let events = events.clone();
            async move {
                let stream = StreamId::new("bank_account", "acc-1");
                let done = store.append(&stream, ExpectedVersion::Any, events).await;
                black_box(ok(done, "append"));
            }
        });
    }
    group.finish();
}

/// LMDB reads that find little: a stream that does not exist yet and one of five events (a
/// kernel loading an aggregate), and the log read from its head (a projection following it).
fn lmdb_reads(c: &mut Criterion) {
    let rt = runtime();
    let dir = ok(tempfile::tempdir(), "create a temporary directory");
    let store = std::sync::Arc::new(ok(
        es_stores::LmdbStore::open(dir.path()),
        "open an LMDB store",
    ));
    let event = ok(
        BankAccountEvent::from(Deposited { amount: 1 }).to_new_event(),
        "encode",
    );
    let five = StreamId::new("bank_account", "acc-5");
    for _ in 0..5 {
        let append = store.append(&five, ExpectedVersion::Any, vec![event.clone()]);
        ok(rt.block_on(append), "append");
    }
    let head = ok(rt.block_on(store.head_position()), "read the head");
    let mut group = c.benchmark_group("lmdb_store");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let reads: [(&str, StreamId); 2] = [
        (
            "read_stream_empty",
            StreamId::new("bank_account", "acc-none"),
        ),
        ("read_stream_of_5", five),
    ];
    for (name, stream) in reads {
        bench_in_task(&mut group, &rt, name, store.clone(), move |store| {
            let stream = stream.clone();
            async move {
                let read = store.read_stream(&stream, 1, 4096).await;
                black_box(ok(read, "read a stream"));
            }
        });
    }
    bench_in_task(
        &mut group,
        &rt,
        "read_all_at_head",
        store,
        move |store| async move {
            let read = store.read_all(head, 4096).await;
            black_box(ok(read, "read the log"));
        },
    );
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    events(&mut c);
    dispatch(&mut c);
    memory_append(&mut c);
    lmdb_reads(&mut c);
    c.final_summary();
}
