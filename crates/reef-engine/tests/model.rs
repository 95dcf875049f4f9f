//! Model-based test: random sequences of requests (every op kind, random
//! preconditions, idempotency keys reused with the same and with other
//! ops), restarts, folds, compactions and GC at random points, reads and
//! scans, against a `BTreeMap` model that
//! implements DESIGN §2 independently. After every step the engine's
//! answers and reads equal the model's.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use reef_engine::{Engine, EngineOptions, ErrorKind, ScanRange, WriteResult};
use reef_format::{Document, Op, OpKind, Precondition, WriteRequest, merge_patch};
use reef_manifest::ManualClock;
use reef_manifest::store::{DynStore, MemoryStore};

#[derive(Clone, Debug)]
enum Step {
    Write(WriteRequest),
    Restart,
    Flush,
    Compact,
    Gc,
    Scan(Option<String>, Option<usize>),
}

#[derive(Default)]
struct Model {
    docs: BTreeMap<String, (u64, Document)>,
    version: u64,
    lsn: u64,
    keys: BTreeMap<String, (u128, WriteResult)>,
}

impl Model {
    /// The expected outcome of a write: a result, or the error kind.
    fn write(&mut self, req: &WriteRequest) -> Result<WriteResult, ErrorKind> {
        if let Some(key) = &req.idempotency_key
            && let Some((fp, result)) = self.keys.get(key)
        {
            return if *fp == req.fingerprint() {
                Ok(WriteResult {
                    replayed: true,
                    ..result.clone()
                })
            } else {
                Err(ErrorKind::Conflict)
            };
        }
        let mut docs = self.docs.clone();
        let mut version = self.version;
        let mut r = WriteResult {
            lsn: self.lsn + 1,
            first_version: None,
            last_version: None,
            upserted: 0,
            patched: 0,
            deleted: 0,
            skipped: 0,
            replayed: false,
        };
        for op in &req.ops {
            let cur = docs.get(&op.id).cloned();
            let ok = match op.precondition {
                None => true,
                Some(Precondition::Absent) => cur.is_none(),
                Some(Precondition::Exists) => cur.is_some(),
                Some(Precondition::Version(n)) => cur.as_ref().is_some_and(|(v, _)| *v == n),
            };
            if !ok {
                return Err(ErrorKind::Conflict);
            }
            let new = match (op.kind, cur) {
                (OpKind::Upsert, _) => Some(op.doc.clone().unwrap()),
                (OpKind::Patch, Some((_, mut d))) => {
                    merge_patch(&mut d, op.doc.as_ref().unwrap());
                    Some(d)
                }
                (OpKind::Patch | OpKind::Delete, None) => {
                    r.skipped += 1;
                    continue;
                }
                (OpKind::Delete, Some(_)) => None,
            };
            version += 1;
            r.first_version.get_or_insert(version);
            r.last_version = Some(version);
            match op.kind {
                OpKind::Upsert => r.upserted += 1,
                OpKind::Patch => r.patched += 1,
                OpKind::Delete => r.deleted += 1,
            }
            match new {
                Some(d) => docs.insert(op.id.clone(), (version, d)),
                None => docs.remove(&op.id),
            };
        }
        self.docs = docs;
        self.version = version;
        self.lsn += 1;
        if let Some(key) = &req.idempotency_key {
            self.keys
                .insert(key.clone(), (req.fingerprint(), r.clone()));
        }
        Ok(r)
    }
}

fn op() -> impl Strategy<Value = Op> {
    let id = prop::sample::select(vec!["a", "b", "c", "d"]);
    let doc = prop::collection::btree_map(prop::sample::select(vec!["x", "y"]), -3i64..3, 0..3)
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), reef_format::Value::I64(v)))
                .collect()
        });
    let pre = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Precondition::Absent)),
        1 => Just(Some(Precondition::Exists)),
        1 => (0u64..8).prop_map(|v| Some(Precondition::Version(v))),
    ];
    (0..3u8, id, doc, pre).prop_map(|(k, id, doc, pre)| {
        let mut op = match k {
            0 => common::upsert(id, doc),
            1 => common::patch(id, doc),
            _ => common::delete(id),
        };
        op.precondition = pre;
        op
    })
}

fn step() -> impl Strategy<Value = Step> {
    let key = prop::option::weighted(
        0.3,
        prop::sample::select(vec!["k1", "k2"]).prop_map(str::to_owned),
    );
    prop_oneof![
        8 => (prop::collection::vec(op(), 1..4), key)
            .prop_map(|(ops, idempotency_key)| Step::Write(WriteRequest { ops, idempotency_key })),
        1 => Just(Step::Restart),
        1 => Just(Step::Flush),
        1 => Just(Step::Compact),
        1 => Just(Step::Gc),
        1 => (prop::option::of(prop::sample::select(vec!["b", "c"]).prop_map(str::to_owned)), prop::option::of(1usize..3))
            .prop_map(|(p, l)| Step::Scan(p, l)),
    ]
}

/// Options for the model runs: folds, compactions and GC happen only as
/// steps, on a clock the test moves (so GC really deletes).
fn options(clock: &ManualClock) -> EngineOptions {
    let mut o = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    o.compactor.clock = Arc::new(clock.clone());
    o.compactor.compaction_l0_trigger = 2;
    o
}

async fn check(store: DynStore, steps: Vec<Step>) {
    let clock = ManualClock::new(1_000_000);
    let mut engine = Engine::open(Arc::clone(&store), options(&clock))
        .await
        .unwrap();
    let mut model = Model::default();
    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Write(req) => {
                let expected = model.write(&req);
                let got = engine.write("m", req.clone()).await.map_err(|e| e.kind());
                assert_eq!(got, expected, "step {i}: {req:?}");
            }
            Step::Restart => {
                engine.close().await.unwrap();
                engine = Engine::open(Arc::clone(&store), options(&clock))
                    .await
                    .unwrap();
            }
            Step::Flush => {
                engine.flush("m").await.unwrap();
            }
            Step::Compact => {
                engine.compact("m", true).await.unwrap();
            }
            Step::Gc => {
                let o = options(&clock).compactor;
                clock.advance(o.gc_grace_ms + 1);
                engine.gc("m").await.unwrap();
            }
            Step::Scan(from, limit) => {
                let range = ScanRange {
                    from: from.clone(),
                    limit,
                    ..ScanRange::default()
                };
                let got: Vec<(String, u64, Document)> = engine
                    .scan("m", &range)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| (d.id, d.version, d.doc))
                    .collect();
                let expected: Vec<(String, u64, Document)> = model
                    .docs
                    .iter()
                    .filter(|(id, _)| from.as_ref().is_none_or(|f| *id >= f))
                    .take(limit.unwrap_or(usize::MAX))
                    .map(|(id, (v, d))| (id.clone(), *v, d.clone()))
                    .collect();
                assert_eq!(got, expected, "step {i}: scan");
            }
        }
        for id in ["a", "b", "c", "d"] {
            let got = engine
                .get("m", id)
                .await
                .unwrap()
                .map(|d| (d.version, d.doc));
            assert_eq!(got, model.docs.get(id).cloned(), "step {i}: get {id}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn engine_equals_model_on_memory(steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(check(Arc::new(MemoryStore::new()), steps));
    }
}

/// The same model, one long fixed-seed sequence per backend (local, S3).
#[test]
fn engine_equals_model_on_every_backend() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let steps = prop::collection::vec(step(), 120)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backends = common::backends("engine-model");
    for (name, store) in &backends.stores {
        eprintln!("backend {name}");
        rt.block_on(check(Arc::clone(store), steps.clone()));
    }
}
