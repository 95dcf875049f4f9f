//! Codec throughput, each beside a plain memcpy of the same bytes so the
//! numbers have a floor to compare with. Run with `cargo xtask bench`
//! (or `cargo bench -p reef-format`); `cargo xtask bench-test` runs each once.
//!
//! Workload: documents of ~200 bytes (5 attributes: strings, ints, a float,
//! a short array), ids `user/<8 digits>`. A WAL record holds 1,000 such
//! upserts (~250 KB); a segment holds 20,000 (~5 MB) in 32 KiB blocks.

use std::hint::black_box;
use std::ops::Bound;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reef_format::segment::Block;
use reef_format::{
    Document, Entry, Limits, OpKind, Segment, SegmentBuilder, SegmentOptions, Value, WalOp,
    WalRecord, WalRequest, decode_document, encode_document,
};

fn doc(i: u64) -> Document {
    let mut d = Document::new();
    d.insert(
        "name".into(),
        Value::String(format!("user number {i} with a longer name field")),
    );
    d.insert(
        "email".into(),
        Value::String(format!("user{i}@example.invalid")),
    );
    d.insert("age".into(), Value::I64((i % 90) as i64));
    d.insert("score".into(), Value::F64(i as f64 * 0.37));
    d.insert(
        "tags".into(),
        Value::Array(vec![
            Value::String("alpha".into()),
            Value::String("beta".into()),
        ]),
    );
    d
}

fn entries(n: u64) -> Vec<Entry> {
    let limits = Limits::default();
    (0..n)
        .map(|i| {
            Entry::put(
                format!("user/{i:08}"),
                i + 1,
                encode_document(&doc(i), &limits).unwrap(),
            )
        })
        .collect()
}

fn wal_record(n: u64) -> WalRecord {
    WalRecord {
        lsn: 1,
        writer_id: 7,
        timestamp_ms: 0,
        requests: vec![WalRequest {
            idempotency_key: None,
            fingerprint: 0,
            skipped: 0,
            ops: entries(n)
                .into_iter()
                .map(|entry| WalOp {
                    kind: OpKind::Upsert,
                    entry,
                })
                .collect(),
        }],
    }
}

fn build(entries: &[Entry]) -> Bytes {
    let mut b = SegmentBuilder::new(SegmentOptions::default());
    for e in entries {
        b.add(e).unwrap();
    }
    b.finish().unwrap().bytes
}

fn memcpy_baseline(c: &mut Criterion, group: &str, len: usize) {
    let src = vec![7u8; len];
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; len];
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

fn wal(c: &mut Criterion) {
    let rec = wal_record(1_000);
    let bytes = Bytes::from(rec.encode().unwrap());
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(rec.encode().unwrap())));
    g.bench_function("decode", |b| {
        b.iter(|| black_box(WalRecord::decode(&bytes, "wal").unwrap()))
    });
    g.finish();
    memcpy_baseline(c, "wal", bytes.len());
}

fn segment(c: &mut Criterion) {
    let es = entries(20_000);
    let bytes = build(&es);
    let seg = Segment::open(bytes.clone(), "seg").unwrap();

    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("build", |b| b.iter(|| black_box(build(&es))));
    g.bench_function("scan_all", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for e in seg.iter() {
                n += e.unwrap().payload_bytes();
            }
            black_box(n)
        })
    });
    g.finish();
    memcpy_baseline(c, "segment", bytes.len());

    let h = &seg.index().blocks()[0];
    let block = bytes.slice(h.offset as usize..(h.offset + u64::from(h.len)) as usize);
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| black_box(Block::decode(&block, "seg", 0).unwrap()))
    });
    g.finish();
    memcpy_baseline(c, "block", block.len());

    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    // Uncached: every lookup decodes (and checks) its whole 32 KiB block;
    // the object-store layer's block cache is what makes hot hits cheap.
    g.bench_function("get_hit_uncached", |b| {
        b.iter(|| {
            i = (i + 7919) % 20_000;
            black_box(seg.get(&format!("user/{i:08}"), u64::MAX).unwrap())
        })
    });
    g.bench_function("get_miss_bloom", |b| {
        b.iter(|| {
            i = (i + 7919) % 20_000;
            black_box(seg.get(&format!("nobody/{i:08}"), u64::MAX).unwrap())
        })
    });
    g.finish();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(100));
    g.bench_function("range_100_uncached", |b| {
        b.iter(|| {
            i = (i + 7919) % 19_900;
            let from = format!("user/{i:08}");
            black_box(
                seg.range(Bound::Included(&from), Bound::Unbounded)
                    .take(100)
                    .count(),
            )
        })
    });
    g.finish();
}

fn document(c: &mut Criterion) {
    let limits = Limits::default();
    let d = doc(12345);
    let bytes = encode_document(&d, &limits).unwrap();
    let mut g = c.benchmark_group("document");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| black_box(encode_document(&d, &limits).unwrap()))
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode_document(&bytes, "doc").unwrap()))
    });
    g.finish();
    memcpy_baseline(c, "document", bytes.len());
}

criterion_group!(benches, wal, segment, document);
criterion_main!(benches);
