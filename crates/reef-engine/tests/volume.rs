//! Volume: 1,000,000 upserts over 100,000 ids with background folds and
//! compaction end with a bounded number of segments, every id at its last
//! value, and `stats` reporting WAL objects, segments per level, bytes and
//! write amplification.

use std::sync::Arc;

use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_format::{Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, MemoryStore};

const IDS: u64 = 100_000;
const UPSERTS: u64 = 1_000_000;
const PER_REQUEST: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_upserts_over_100k_ids_stay_bounded() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let mut opts = EngineOptions {
        fold_trigger_bytes: 4 << 20,
        fold_trigger_wal_objects: 50,
        ..EngineOptions::default()
    };
    opts.compactor.l1_segment_bytes_target = 8 << 20;
    let e = Engine::open(Arc::clone(&store), opts).await.unwrap();
    let mut max_segments = 0;
    for r in 0..UPSERTS / PER_REQUEST {
        let ops = (0..PER_REQUEST)
            .map(|k| {
                let n = r * PER_REQUEST + k;
                // Ids revisited in a scrambled order, ten times each.
                let id = (n * 7919) % IDS;
                Op {
                    kind: OpKind::Upsert,
                    id: format!("id{id:06}"),
                    doc: Some([("n".to_owned(), Value::I64(n as i64))].into()),
                    precondition: None,
                }
            })
            .collect();
        e.write(
            "v",
            WriteRequest {
                ops,
                idempotency_key: None,
            },
        )
        .await
        .unwrap();
        let stats = e.stats("v").await.unwrap();
        max_segments = max_segments.max(stats.segments.values().sum::<usize>());
        assert!(
            stats.background_error.is_none(),
            "{:?}",
            stats.background_error
        );
    }
    e.flush("v").await.unwrap();
    e.compact("v", true).await.unwrap();
    let stats = e.stats("v").await.unwrap();
    eprintln!("{stats:?}; at most {max_segments} segments during the run");
    assert_eq!(stats.last_version, UPSERTS);
    assert_eq!(stats.wal_objects, 0, "everything folded");
    assert_eq!(stats.segments.get(&0), None, "level 0 compacted away");
    let l1 = stats.segments.get(&1).copied().unwrap_or(0);
    assert!(
        (1..=4).contains(&l1),
        "{l1} level-1 segments for 100k live ids"
    );
    assert!(
        max_segments <= 12,
        "segments stayed bounded during the run: {max_segments}"
    );
    let wa = stats.write_amplification.unwrap();
    assert!(wa > 1.0 && wa < 20.0, "write amplification {wa}");
    assert!(stats.bytes > 0);

    // Every id holds its last write: the n with n*7919 % IDS == id, largest.
    let docs = e.scan("v", &ScanRange::default()).await.unwrap();
    assert_eq!(docs.len() as u64, IDS);
    for d in docs.iter().step_by(997) {
        let id: u64 = d.id[2..].parse().unwrap();
        let last = (0..UPSERTS).rev().find(|n| n * 7919 % IDS == id).unwrap();
        assert_eq!(d.doc["n"], Value::I64(last as i64), "{}", d.id);
        assert_eq!(d.version, last + 1);
    }
}

/// A fold takes about `fold_bytes_max` of WAL (issue #13: fold memory
/// bounded by configuration, not by how much WAL waits), and `flush` folds
/// one such piece after another until everything it applied is folded.
#[tokio::test]
async fn folds_take_at_most_fold_bytes_max_and_flush_takes_them_all() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let mut opts = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    opts.compactor.fold_bytes_max = 20_000;
    let e = Engine::open(Arc::clone(&store), opts.clone())
        .await
        .unwrap();
    let pad = "p".repeat(1_000);
    for r in 0..100u64 {
        let ops = (0..2u64).map(|k| Op {
            kind: OpKind::Upsert,
            id: format!("id{:04}", r * 2 + k),
            doc: Some([("pad".to_owned(), Value::String(pad.clone()))].into()),
            precondition: None,
        });
        e.write("ns", WriteRequest::new(ops)).await.unwrap();
    }
    // One fold, as a standalone compactor runs it: about 20 KB of the
    // ~200 KB waiting, at most one record (2 KB) past the budget.
    let layout = reef_manifest::Layout::new("ns").unwrap();
    let one = reef_compactor::fold(&store, &layout, &opts.compactor, None)
        .await
        .unwrap();
    assert!(
        (9..=11).contains(&one.records),
        "one fold took {} records of ~2 KB",
        one.records
    );
    let all = e.flush("ns").await.unwrap();
    assert_eq!(all.records + one.records, 100, "flush folds the rest");
    let stats = e.stats("ns").await.unwrap();
    assert_eq!(stats.last_applied_lsn, stats.last_lsn);
    assert!(
        stats.segments.get(&0).copied().unwrap_or(0) >= 10,
        "one level-0 segment per fold: {:?}",
        stats.segments
    );
    let docs = e.scan("ns", &ScanRange::default()).await.unwrap();
    assert_eq!(docs.len(), 200);
    e.close().await.unwrap();
}

/// A fold's budget holds when record sizes vary: one small record
/// followed by large ones must not make the fold read a batch of large
/// ones sized from the small one (it read 65 records, ~650 KB, against a
/// 50 KB budget). The batch is cut from the listing's sizes before it is
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_record_first_does_not_stretch_the_fold_budget() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let mut opts = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    opts.compactor.fold_bytes_max = 50_000;
    let e = Engine::open(Arc::clone(&store), opts.clone())
        .await
        .unwrap();
    let upsert = |id: String, pad: usize| Op {
        kind: OpKind::Upsert,
        id,
        doc: Some([("pad".to_owned(), Value::String("p".repeat(pad)))].into()),
        precondition: None,
    };
    e.write("ns", WriteRequest::new([upsert("small".into(), 1)]))
        .await
        .unwrap();
    for r in 0..80u64 {
        let req = WriteRequest::new([upsert(format!("big{r:03}"), 10_000)]);
        e.write("ns", req).await.unwrap();
    }
    let layout = reef_manifest::Layout::new("ns").unwrap();
    let one = reef_compactor::fold(&store, &layout, &opts.compactor, None)
        .await
        .unwrap();
    // The small record and four or five large ones fit in 50 KB.
    assert!(
        (2..=6).contains(&one.records),
        "one fold took {} records ({} bytes of segment) against a 50 KB budget",
        one.records,
        one.segment_bytes
    );
    let all = e.flush("ns").await.unwrap();
    assert_eq!(all.records + one.records, 81, "flush folds the rest");
    assert_eq!(e.scan("ns", &ScanRange::default()).await.unwrap().len(), 81);
    e.close().await.unwrap();
}
