//! Full-scan throughput through the library's `Stream` (issue #13: ≥ 2M
//! documents/s). Workload: 200,000 documents `{"v": <100 bytes>}` under
//! ids `k<9 digits>`, written in requests of 1,000, folded and compacted
//! into level 1, on the in-memory store, so the figure is Reef's own cost
//! (block decode, merge, document decode), not the disk's; and the same
//! on the local disk (`LocalStore` in a temporary directory, page cache
//! warm after the first pass), as the peer harness scans.
//!
//! A third case spreads the same documents over eight level-0 segments
//! that each span the whole id range (every eighth id, flushed in turn,
//! never compacted), as a namespace written by many writers looks between
//! compactions: the scan then merges eight runs.
//!
//! `cargo bench -p reef-engine --bench scan`; without `--bench` (the CI
//! smoke run) it scans 2,000 documents once so the code cannot rot.
#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::TryStreamExt;
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_format::{Document, Op, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore, MemoryStore};
use reef_manifest::testing::TempDir;

const NS: &str = "scan";

async fn fill(store: DynStore, docs: usize) -> Engine {
    let engine = Engine::open(store, EngineOptions::default()).await.unwrap();
    let value = "v".repeat(100);
    for start in (0..docs).step_by(1_000) {
        let ops = (start..(start + 1_000).min(docs)).map(|i| {
            let doc = Document::from_iter([("v".to_owned(), Value::String(value.clone()))]);
            Op::upsert(format!("k{i:09}"), doc)
        });
        engine.write(NS, WriteRequest::new(ops)).await.unwrap();
    }
    engine.flush(NS).await.unwrap();
    engine.compact(NS, true).await.unwrap();
    engine
}

/// `docs` documents over `segments` level-0 segments, each holding every
/// `segments`-th id, so every segment spans the whole range.
async fn fill_overlapping(store: DynStore, docs: usize, segments: usize) -> Engine {
    // No background work: it would compact the level-0 segments away.
    let opts = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    let engine = Engine::open(store, opts).await.unwrap();
    let value = "v".repeat(100);
    for seg in 0..segments {
        let ids: Vec<usize> = (seg..docs).step_by(segments).collect();
        for chunk in ids.chunks(1_000) {
            let ops = chunk.iter().map(|i| {
                let doc = Document::from_iter([("v".to_owned(), Value::String(value.clone()))]);
                Op::upsert(format!("k{i:09}"), doc)
            });
            engine.write(NS, WriteRequest::new(ops)).await.unwrap();
        }
        engine.flush(NS).await.unwrap();
    }
    engine
}

async fn scan_all(engine: &Engine, docs: usize) {
    let mut stream = engine.scan_stream(NS, &ScanRange::default()).await.unwrap();
    let mut n = 0usize;
    while let Some(doc) = stream.try_next().await.unwrap() {
        black_box(&doc);
        n += 1;
    }
    assert_eq!(n, docs);
}

fn scan(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    let docs = if full { 200_000 } else { 2_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new("scan-bench");
    let stores: [(&str, DynStore); 2] = [
        ("memory", Arc::new(MemoryStore::new())),
        ("local", Arc::new(LocalStore::new(dir.path()))),
    ];
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(docs as u64));
    g.sample_size(10);
    for (name, store) in stores {
        let engine = rt.block_on(fill(store, docs));
        g.bench_function(format!("full_scan_stream_{name}"), |b| {
            b.iter(|| rt.block_on(scan_all(&engine, docs)))
        });
        rt.block_on(engine.close()).unwrap();
    }
    let engine = rt.block_on(fill_overlapping(Arc::new(MemoryStore::new()), docs, 8));
    g.bench_function("full_scan_stream_memory_8_overlapping_l0", |b| {
        b.iter(|| rt.block_on(scan_all(&engine, docs)))
    });
    rt.block_on(engine.close()).unwrap();
    // Cold: a fresh engine per pass (empty block cache, as a one-shot
    // `reef scan` starts), opening the namespace included.
    g.bench_function("full_scan_stream_local_cold", |b| {
        b.iter(|| {
            rt.block_on(async {
                let store: DynStore = Arc::new(LocalStore::new(dir.path()));
                let engine = Engine::open(store, EngineOptions::default()).await.unwrap();
                scan_all(&engine, docs).await;
                engine.close().await.unwrap();
            })
        })
    });
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
