//! Store-layer latencies: durable local writes (temp file, fsync, link or
//! rename, directory fsync), CAS, ranged reads, and segment point reads
//! cold (one ranged GET + block decode) and cached (no request).
//! Workload: 4 KiB objects; a 2,000-entry segment of ~130-byte documents
//! in 32 KiB blocks. Local numbers depend on the disk's fsync latency.
#![allow(clippy::disallowed_methods, reason = "benchmarks measure real time")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use reef_format::{Entry, Limits, SegmentBuilder, SegmentOptions, Value, encode_document};
use reef_manifest::store::{DynStore, LocalStore, MemoryStore, PutOutcome};
use reef_manifest::{BlockCache, SegmentReader};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("reef-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn puts(c: &mut Criterion) {
    let rt = runtime();
    let dir = bench_dir();
    let payload = Bytes::from(vec![7u8; 4096]);
    let n = AtomicU64::new(0);
    let stores: [(&str, DynStore); 2] = [
        ("local", Arc::new(LocalStore::new(dir.join("puts")))),
        ("memory", Arc::new(MemoryStore::new())),
    ];
    let mut g = c.benchmark_group("store");
    for (name, store) in &stores {
        g.bench_function(format!("{name}_put_if_absent_4k"), |b| {
            b.iter(|| {
                let key = format!("p/{}", n.fetch_add(1, Ordering::Relaxed));
                rt.block_on(store.put_if_absent(&key, payload.clone()))
                    .unwrap()
            })
        });
        rt.block_on(store.put("cas/k", payload.clone())).unwrap();
        g.bench_function(format!("{name}_cas_4k"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tag = store.head("cas/k").await.unwrap().unwrap().tag;
                    let out = store
                        .put_if_match("cas/k", payload.clone(), &tag)
                        .await
                        .unwrap();
                    assert!(matches!(out, PutOutcome::Written(_)));
                })
            })
        });
        g.bench_function(format!("{name}_get_range_4k"), |b| {
            b.iter(|| black_box(rt.block_on(store.get_range("cas/k", 0..4096)).unwrap()))
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn segment_reads(c: &mut Criterion) {
    let rt = runtime();
    let dir = bench_dir();
    let store: DynStore = Arc::new(LocalStore::new(dir.join("seg")));
    let mut builder = SegmentBuilder::new(SegmentOptions::default());
    for i in 0..2000u64 {
        let doc = [
            ("n".to_owned(), Value::I64(i as i64)),
            ("s".to_owned(), Value::String("x".repeat(100))),
        ]
        .into();
        builder
            .add(&Entry::put(
                format!("id/{i:05}"),
                i + 1,
                encode_document(&doc, &Limits::default()).unwrap(),
            ))
            .unwrap();
    }
    let built = builder.finish().unwrap();
    rt.block_on(store.put("s/seg", built.bytes.clone()))
        .unwrap();
    let len = Some(built.bytes.len() as u64);
    let warm = rt
        .block_on(SegmentReader::open(
            Arc::clone(&store),
            "s/seg",
            len,
            Arc::new(BlockCache::new(64 << 20)),
        ))
        .unwrap();
    let cold = rt
        .block_on(SegmentReader::open(
            Arc::clone(&store),
            "s/seg",
            len,
            Arc::new(BlockCache::new(0)),
        ))
        .unwrap();
    let mut i = 0u64;
    let mut g = c.benchmark_group("segment_reader");
    g.bench_function("get_cached", |b| {
        b.iter(|| {
            i = (i + 7919) % 2000;
            black_box(
                rt.block_on(warm.get(&format!("id/{i:05}"), u64::MAX))
                    .unwrap(),
            )
        })
    });
    g.bench_function("get_uncached_local", |b| {
        b.iter(|| {
            i = (i + 7919) % 2000;
            black_box(
                rt.block_on(cold.get(&format!("id/{i:05}"), u64::MAX))
                    .unwrap(),
            )
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, puts, segment_reads);
criterion_main!(benches);
