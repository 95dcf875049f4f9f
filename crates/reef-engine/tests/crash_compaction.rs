//! Crash at every point of fold, compaction and GC: before and after each
//! object-store operation, the process "dies" (every later operation
//! fails). Afterwards the bucket alone recovers to exactly the
//! acknowledged state, and a GC run (once the grace periods have passed)
//! leaves only reachable objects.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use reef_compactor::CompactorOptions;
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_manifest::store::{
    CountingStore, DynStore, FaultPlan, FaultyStore, MemoryStore, list_all,
};
use reef_manifest::{Layout, ManifestStore, ManualClock};

#[derive(Clone, Copy, Debug)]
enum Op {
    Fold,
    Compact,
    Gc,
}

fn options(clock: &ManualClock) -> EngineOptions {
    let mut o = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    o.compactor.clock = Arc::new(clock.clone());
    o.compactor.compaction_l0_trigger = 2;
    o
}

fn far(o: &CompactorOptions) -> u64 {
    o.gc_grace_ms + 1
}

type Model = BTreeMap<String, (u64, reef_format::Document)>;

/// Two folded batches, a superseded manifest old enough to collect, and an
/// unfolded third batch: every operation has work to do.
async fn setup(store: &DynStore, clock: &ManualClock) -> Model {
    let e = Engine::open(Arc::clone(store), options(clock))
        .await
        .unwrap();
    for batch in 0..3i64 {
        for i in 0..12i64 {
            let id = format!("k{}", (i * 5 + batch) % 17);
            let req = if i % 4 == 3 {
                common::request(vec![common::delete(&id)])
            } else {
                common::request(vec![common::upsert(
                    &id,
                    common::doc(&[("b", batch), ("i", i)]),
                )])
            };
            e.write("x", req).await.unwrap();
        }
        if batch < 2 {
            e.flush("x").await.unwrap();
        }
    }
    clock.advance(far(&options(clock).compactor));
    read_all(&e).await
}

async fn read_all(e: &Engine) -> Model {
    e.scan("x", &ScanRange::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, (d.version, d.doc)))
        .collect()
}

async fn run(op: Op, store: &DynStore, o: &CompactorOptions) -> bool {
    let layout = Layout::new("x").unwrap();
    match op {
        Op::Fold => reef_compactor::fold(store, &layout, o, None).await.is_ok(),
        Op::Compact => reef_compactor::compact(store, &layout, o, true)
            .await
            .is_ok(),
        Op::Gc => reef_compactor::gc(store, &layout, o).await.is_ok(),
    }
}

/// After a GC with every grace period passed, the bucket holds the current
/// manifest, its segments and the unfolded WAL, and nothing else.
async fn assert_only_reachable(store: &DynStore, clock: &ManualClock, context: &str) {
    let o = options(clock).compactor;
    clock.advance(far(&o));
    let layout = Layout::new("x").unwrap();
    reef_compactor::gc(store, &layout, &o).await.unwrap();
    let current = ManifestStore::new(Arc::clone(store), layout.clone())
        .load_current()
        .await
        .unwrap()
        .unwrap();
    let mut expected: BTreeSet<String> = current
        .segments
        .iter()
        .map(|s| layout.segment_key(s.id))
        .collect();
    expected.insert(layout.manifest_key(current.version));
    expected.insert(layout.head_key());
    let listed = list_all(store.as_ref(), layout.root()).await.unwrap();
    for obj in listed {
        if let Some(lsn) = layout.parse_wal_key(&obj.key) {
            assert!(
                lsn > current.last_applied_lsn,
                "{context}: folded {} survived GC",
                obj.key
            );
        } else {
            assert!(
                expected.contains(&obj.key),
                "{context}: unreachable {} survived GC",
                obj.key
            );
        }
    }
}

async fn crash_everywhere(op: Op) {
    // How many operations does this step make, uninterrupted?
    let clock = ManualClock::new(1_000_000);
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let dyn_counting: DynStore = counting.clone();
    setup(&dyn_counting, &clock).await;
    let before = counting.counts();
    assert!(run(op, &dyn_counting, &options(&clock).compactor).await);
    let ops = counting.counts().since(&before).requests();
    assert!(ops > 2, "{op:?} makes {ops} requests");

    let mut interrupted = 0;
    for k in 0..ops {
        for after in [false, true] {
            let context = format!(
                "{op:?}, crash {} op {k} of {ops}",
                if after { "after" } else { "before" }
            );
            let clock = ManualClock::new(1_000_000);
            let inner = MemoryStore::new();
            let clean: DynStore = Arc::new(inner.clone());
            let model = setup(&clean, &clock).await;
            let plan = FaultPlan {
                crash_before_op: (!after).then_some(k),
                crash_after_op: after.then_some(k),
                ..FaultPlan::default()
            };
            let faulty: DynStore = Arc::new(FaultyStore::new(inner.clone(), plan));
            if !run(op, &faulty, &options(&clock).compactor).await {
                interrupted += 1;
            }

            // Recovery from the bucket alone sees exactly the model.
            let e = Engine::open(Arc::clone(&clean), options(&clock))
                .await
                .unwrap();
            assert_eq!(read_all(&e).await, model, "{context}: reads after recovery");
            // The interrupted step can simply run again.
            assert!(
                run(op, &clean, &options(&clock).compactor).await,
                "{context}: re-run"
            );
            assert_only_reachable(&clean, &clock, &context).await;
            let e = Engine::open(Arc::clone(&clean), options(&clock))
                .await
                .unwrap();
            assert_eq!(read_all(&e).await, model, "{context}: reads after GC");
        }
    }
    // Every crash point cut the step short. (A failed HEAD move after a
    // commit is not an error by itself, but `commit_change` then reads
    // the current manifest to rule out an off-chain commit, and a failure
    // there leaves the outcome unknown to the caller, which is reported.)
    assert_eq!(
        interrupted,
        2 * ops,
        "{op:?}: crash points that did not interrupt"
    );
    eprintln!("{op:?}: {ops} operations, crashed before and after each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_anywhere_in_fold() {
    crash_everywhere(Op::Fold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_anywhere_in_compaction() {
    crash_everywhere(Op::Compact).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_anywhere_in_gc() {
    crash_everywhere(Op::Gc).await;
}
