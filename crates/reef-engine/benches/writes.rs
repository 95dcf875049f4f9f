//! Durable write throughput and acknowledgement latency at 1, 16 and 256
//! concurrent writers, and object-store requests per acknowledged write
//! (DESIGN §8). Workload: each writer sends single-upsert requests of a
//! ~100-byte document to its own ids in one namespace, for a fixed count.
//!
//! `cargo bench -p reef-engine --bench writes` runs the full workload on
//! the local disk, the in-memory store and (when it is installed) the S3
//! test server; without `--bench` (the CI smoke run) it runs a few writes
//! so the code cannot rot.
#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reef_engine::{Engine, EngineOptions};
use reef_format::{Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{CountingStore, DynStore, LocalStore, MemoryStore, ObjectStore};

fn request(writer: usize, i: usize) -> WriteRequest {
    let doc = [
        (
            "name".to_owned(),
            Value::String(format!("writer {writer} item {i} with some padding")),
        ),
        ("n".to_owned(), Value::I64(i as i64)),
    ]
    .into();
    WriteRequest {
        ops: vec![Op {
            kind: OpKind::Upsert,
            id: format!("w{writer}/{i:06}"),
            doc: Some(doc),
            precondition: None,
        }],
        idempotency_key: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run<S: ObjectStore + 'static>(
    name: &str,
    store: Arc<CountingStore<S>>,
    writers: usize,
    each: usize,
) {
    let dyn_store: DynStore = store.clone();
    let engine = Arc::new(
        Engine::open(dyn_store, EngineOptions::default())
            .await
            .unwrap(),
    );
    let ns = format!("bench-{writers}");
    engine.get(&ns, "warm-up").await.unwrap();
    let before = store.counts();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let engine = Arc::clone(&engine);
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(each);
            for i in 0..each {
                let t = Instant::now();
                engine.write(&ns, request(w, i)).await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort_unstable();
    let writes = (writers * each) as f64;
    let counts = store.counts().since(&before);
    let wal = engine.stats(&ns).await.unwrap().wal_objects;
    println!(
        "| {name} | {writers} | {:.0} | {:.2} | {:.2} | {:.3} | {:.1} |",
        writes / elapsed.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        counts.requests() as f64 / writes,
        writes / wal as f64,
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("reef-write-bench-{}", std::process::id()));
    println!(
        "| store | writers | writes/s | p50 ack ms | p99 ack ms | requests/write | writes/WAL object |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for writers in [1usize, 16, 256] {
        let each = if full { (4000 / writers).max(20) } else { 2 };
        rt.block_on(run(
            "local",
            Arc::new(CountingStore::new(LocalStore::new(
                dir.join(writers.to_string()),
            ))),
            writers,
            each,
        ));
        rt.block_on(run(
            "memory",
            Arc::new(CountingStore::new(MemoryStore::new())),
            writers,
            each,
        ));
    }
    // The S3 test server (the run's Ceph RGW, or moto): slower per
    // request than the real thing, so fewer writes.
    if let Some(server) = reef_manifest::testing::S3Server::start() {
        let label = format!("s3 ({})", server.kind());
        for writers in [1usize, 16, 256] {
            let each = if full { (1000 / writers).max(8) } else { 2 };
            rt.block_on(run(
                &label,
                Arc::new(CountingStore::new(server.store(&format!("w{writers}")))),
                writers,
                each,
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
