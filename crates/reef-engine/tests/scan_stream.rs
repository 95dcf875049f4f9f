//! Streaming scans: the same documents as a model for every kind of range,
//! over many blocks, several overlapping segments and a memtable wider than
//! one scan step.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::TryStreamExt;
use reef_engine::{DocStream, Engine, EngineOptions, ScanRange};
use reef_format::{Document, Value, WriteRequest};
use reef_manifest::store::{DynStore, MemoryStore};

type Model = BTreeMap<String, Document>;

fn padded(n: u64) -> Document {
    Document::from_iter([
        ("n".to_owned(), Value::I64(n as i64)),
        ("pad".to_owned(), Value::String("x".repeat(80))),
    ])
}

fn options() -> EngineOptions {
    let mut o = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    o.compactor.compaction_l0_trigger = 2;
    o
}

/// A fixed pseudo-random sequence (the test must not depend on a seed
/// source).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// 1,500 random upserts and deletes over 4,000 ids, applied to the engine
/// and the model.
async fn round(engine: &Engine, model: &mut Model, rng: &mut Lcg) {
    for _ in 0..15 {
        let mut ops = Vec::new();
        let mut touched = std::collections::BTreeSet::new();
        while ops.len() < 100 {
            let id = format!("k{:05}", rng.next(4000));
            if !touched.insert(id.clone()) {
                continue;
            }
            let n = rng.next(1000);
            if n < 200 {
                ops.push(common::delete(&id));
            } else {
                ops.push(common::upsert(&id, padded(n)));
            }
        }
        engine
            .write("s", WriteRequest::new(ops.clone()))
            .await
            .unwrap();
        for op in &ops {
            match &op.doc {
                Some(doc) => {
                    model.insert(op.id.clone(), doc.clone());
                }
                None => {
                    model.remove(&op.id);
                }
            }
        }
    }
}

fn expected(model: &Model, range: &ScanRange) -> Vec<(String, Document)> {
    model
        .iter()
        .filter(|(id, _)| range.from.as_ref().is_none_or(|f| *id >= f))
        .filter(|(id, _)| range.to.as_ref().is_none_or(|t| *id < t))
        .filter(|(id, _)| range.prefix.as_ref().is_none_or(|p| id.starts_with(p)))
        .take(range.limit.unwrap_or(usize::MAX))
        .map(|(id, doc)| (id.clone(), doc.clone()))
        .collect()
}

async fn ids(stream: DocStream) -> Vec<(String, Document)> {
    let docs: Vec<_> = stream.try_collect().await.unwrap();
    docs.into_iter().map(|d| (d.id, d.doc)).collect()
}

/// Compares without printing thousands of documents.
fn same(got: &[(String, Document)], want: &[(String, Document)], what: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{what}: {} documents, expected {}; first difference at {i}: got {:?}, expected {:?}",
            got.len(),
            want.len(),
            got.get(i).map(|d| &d.0),
            want.get(i).map(|d| &d.0)
        );
    }
}

fn ranges() -> Vec<ScanRange> {
    let s = |v: &str| Some(v.to_owned());
    let r = |from, to, prefix, limit| ScanRange {
        from,
        to,
        prefix,
        limit,
    };
    vec![
        r(None, None, None, None),
        r(s("k01000"), s("k02500"), None, None),
        r(None, None, s("k02"), None),
        r(None, None, s("k03"), Some(7)),
        r(s("k00500"), None, None, Some(1500)),
        r(s("k0333"), s("k0334"), None, None),
        r(s("k9"), None, None, None),
        r(None, s("k00000"), None, None),
        r(None, None, None, Some(0)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_equal_the_model_over_segments_and_memtable() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    let mut model = Model::new();
    let mut rng = Lcg(7);
    // Three folds (the second compacts the first two into level 1), then a
    // snapshot, then a memtable of more ids than one scan step takes.
    for flush in [true, true, true, false] {
        round(&engine, &mut model, &mut rng).await;
        if flush {
            engine.flush("s").await.unwrap();
        }
        if model.len() > 1500 && flush {
            engine.compact("s", false).await.unwrap();
        }
    }
    let stats = engine.stats("s").await.unwrap();
    assert!(stats.segments.values().sum::<usize>() >= 2, "{stats:?}");
    assert!(stats.memtable_bytes > 100_000, "{stats:?}");

    for range in ranges() {
        let want = expected(&model, &range);
        let got = ids(engine.scan_stream("s", &range).await.unwrap()).await;
        same(&got, &want, &format!("{range:?}"));
        let vec: Vec<_> = engine.scan("s", &range).await.unwrap();
        assert_eq!(vec.len(), want.len(), "{range:?}");
    }

    // A snapshot's stream keeps reading its version while writes go on,
    // and outlives the snapshot handle.
    let snapshot = engine.snapshot("s").await.unwrap();
    let at_snapshot = model.clone();
    let stream = snapshot.scan_stream(&ScanRange::default());
    drop(snapshot);
    round(&engine, &mut model, &mut rng).await;
    engine.flush("s").await.unwrap();
    same(
        &ids(stream).await,
        &expected(&at_snapshot, &ScanRange::default()),
        "snapshot",
    );
    engine.close().await.unwrap();
}
