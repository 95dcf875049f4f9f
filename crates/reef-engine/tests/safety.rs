//! The schedules that once lost acknowledged writes or readable objects
//! (issue #8), each played exactly: a store gate holds one request, a
//! manual clock jumps, and several engines and a standalone compactor
//! share one bucket. Every test checks the promise itself: an
//! acknowledged write is present with its exact version, and whatever
//! GC left is readable.

mod common;

use std::sync::Arc;

use common::gate::GateStore;
use reef_engine::{Engine, EngineOptions, WriteResult};
use reef_format::Value;
use reef_manifest::store::{DynStore, MemoryStore};
use reef_manifest::{Layout, ManualClock};

const NS: &str = "s";
const MIN: u64 = 60_000;

fn options(clock: &ManualClock) -> EngineOptions {
    let mut o = EngineOptions {
        background: false,
        snapshot_lease_ttl_ms: 24 * 3_600_000,
        clock: Arc::new(clock.clone()),
        ..EngineOptions::default()
    };
    o.compactor.clock = Arc::new(clock.clone());
    o
}

async fn open(store: &DynStore, clock: &ManualClock) -> Engine {
    Engine::open(Arc::clone(store), options(clock))
        .await
        .unwrap()
}

async fn put(e: &Engine, id: &str, v: i64) -> reef_engine::Result<WriteResult> {
    e.write(
        NS,
        common::request(vec![common::upsert(id, common::doc(&[("v", v)]))]),
    )
    .await
}

/// Starts a forced compaction through `gated` and returns once it has
/// written its output and stopped right before its manifest commit, with
/// the sender that lets it go on and its task.
async fn compaction_held_at_its_commit(
    gated: &Arc<GateStore>,
    clock: &ManualClock,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<reef_compactor::Result<reef_compactor::CompactReport>>,
) {
    let gate = gated.arm("/manifest/");
    let store: DynStore = gated.clone();
    let copts = options(clock).compactor;
    let layout = Layout::new(NS).unwrap();
    let compaction =
        tokio::spawn(async move { reef_compactor::compact(&store, &layout, &copts, true).await });
    gate.reached.await.unwrap();
    (gate.release, compaction)
}

/// The promise: an acknowledged write is present, with its version, in a
/// freshly recovered engine; an unacknowledged one is not visible.
async fn assert_kept(
    store: &DynStore,
    clock: &ManualClock,
    id: &str,
    outcome: &reef_engine::Result<WriteResult>,
) {
    let fresh = open(store, clock).await;
    let found = fresh.get(NS, id).await.unwrap();
    match outcome {
        Ok(r) => {
            let doc = found.unwrap_or_else(|| panic!("acknowledged {id} (lsn {}) is lost", r.lsn));
            assert_eq!(Some(doc.version), r.last_version, "{id} keeps its version");
        }
        Err(e) => assert!(found.is_none(), "{id} was refused ({e}) yet is visible"),
    }
}

/// Case 1: a compaction that started before a fold rebases over it; its
/// manifest must not make the fold's WAL look old enough to collect, so
/// the stale writer A cannot acknowledge into a freed slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebased_compaction_does_not_open_the_wal_to_a_stale_writer() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    // The WAL minimum age GC trusted before the fix (the default then).
    let w = 10 * MIN;
    let a = open(&mem, &clock).await;
    for i in 0..3 {
        put(&a, &format!("a{i}"), i).await.unwrap();
    }
    a.flush(NS).await.unwrap();
    put(&a, "a3", 3).await.unwrap();
    a.flush(NS).await.unwrap();

    // A compaction starts now and stops right before its manifest commit.
    let (release, compaction) = compaction_held_at_its_commit(&gated, &clock).await;

    // Meanwhile B takes over, writes and folds, 0.75 W later.
    clock.advance(w * 3 / 4);
    let b = open(&mem, &clock).await;
    put(&b, "b0", 0).await.unwrap();
    put(&b, "b1", 1).await.unwrap();
    b.flush(NS).await.unwrap();
    clock.advance(w / 4);
    release.send(()).unwrap();
    let report = compaction.await.unwrap().unwrap();
    assert!(report.manifest_version.is_some(), "{report:?}");
    b.gc(NS).await.unwrap();

    // A, stale since before B's writes, writes now.
    let late = put(&a, "a-late", 9).await;
    assert_kept(&mem, &clock, "a-late", &late).await;
    for id in ["a0", "a1", "a2", "a3", "b0", "b1"] {
        assert!(
            open(&mem, &clock)
                .await
                .get(NS, id)
                .await
                .unwrap()
                .is_some(),
            "{id}"
        );
    }
}

/// Case 2: GC runs (with no grace at all) while a compaction is between
/// writing its output and committing it. The committed manifest must never
/// reference a deleted segment, and no acknowledged write may vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_deletes_an_in_flight_compactions_output() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    let e = open(&mem, &clock).await;
    let mut acked = Vec::new();
    for i in 0..4 {
        acked.push((format!("k{i}"), put(&e, &format!("k{i}"), i).await));
        e.flush(NS).await.unwrap();
    }
    let (release, compaction) = compaction_held_at_its_commit(&gated, &clock).await;

    // `reef gc --grace 0`, run by another process, long after.
    clock.advance(24 * 60 * MIN);
    let mut gc_opts = options(&clock);
    gc_opts.compactor.gc_grace_ms = 0;
    let gc_engine = Engine::open(Arc::clone(&mem), gc_opts).await.unwrap();
    gc_engine.gc(NS).await.unwrap();
    release.send(()).unwrap();
    let _ = compaction.await.unwrap();
    gc_engine.gc(NS).await.unwrap();
    gc_engine.gc(NS).await.unwrap();

    let fresh = Engine::open(Arc::clone(&mem), options(&clock))
        .await
        .expect("every segment the current manifest lists exists");
    for (id, outcome) in &acked {
        let doc = fresh.get(NS, id).await.unwrap();
        assert_eq!(
            doc.map(|d| d.version),
            outcome.as_ref().unwrap().last_version,
            "{id}"
        );
    }
}

/// An engine that wrote `a` and folded it, then went idle while another
/// process wrote `b`, compacted everything and collected (a day later, so
/// past any grace): the idle engine's cached view lists collected objects.
async fn idle_engine_behind_a_collection() -> (DynStore, ManualClock, Engine) {
    let mem: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000_000);
    let idle = open(&mem, &clock).await;
    put(&idle, "a", 1).await.unwrap();
    idle.flush(NS).await.unwrap();
    let other = open(&mem, &clock).await;
    put(&other, "b", 2).await.unwrap();
    other.flush(NS).await.unwrap();
    other.compact(NS, true).await.unwrap();
    clock.advance(24 * 60 * MIN);
    other.gc(NS).await.unwrap();
    (mem, clock, idle)
}

/// Case 3: an idle engine's cached manifest was collected by another
/// process; a snapshot taken now must read (or fail clearly), never pin a
/// collected version and fail every read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_never_pins_a_collected_version() {
    let (_, _, idle) = idle_engine_behind_a_collection().await;

    let snap = idle.snapshot(NS).await.unwrap();
    let a = snap.get("a").await.expect("snapshot reads work");
    assert_eq!(a.unwrap().doc.get("v"), Some(&Value::I64(1)));
}

/// Case 4: an idle writer's next write reads current values from segments
/// another process has since compacted away and collected; it must adopt
/// the newer manifest and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_writes_after_another_process_collects() {
    let (mem, clock, idle) = idle_engine_behind_a_collection().await;

    let patched = idle
        .write(
            NS,
            common::request(vec![common::patch("a", common::doc(&[("w", 2)]))]),
        )
        .await;
    let r = patched.expect("the write adopts the newer manifest and succeeds");
    assert_eq!(r.patched, 1);
    assert_kept(&mem, &clock, "a", &Ok(r)).await;
}

/// Case 5: writer A's host is suspended (its monotonic clock stops) while
/// B takes over, folds, and GC, an hour later by the wall clock, collects
/// the folded WAL. Every process uses the same settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_writer_cannot_acknowledge_into_a_freed_slot() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000_000);
    let a = open(&mem, &clock).await;
    for i in 0..3 {
        put(&a, &format!("a{i}"), i).await.unwrap();
    }
    let b = open(&mem, &clock).await;
    put(&b, "b0", 0).await.unwrap();
    put(&b, "b1", 1).await.unwrap();
    b.flush(NS).await.unwrap();
    clock.advance(60 * MIN); // the jump: A was suspended for an hour
    let gc = b.gc(NS).await.unwrap();
    assert!(gc.wal > 0, "the folded WAL was collected: {gc:?}");

    let late = put(&a, "a-late", 9).await;
    assert_kept(&mem, &clock, "a-late", &late).await;
}

/// Review finding A: a reader catching up lists the WAL, then (paused)
/// another writer writes, a fold covers those LSNs, GC frees their slots,
/// and a stale writer's late put refills one ("a stray" its writer never
/// acknowledges). The reader must not apply the stray, and must see what
/// was acknowledged instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_never_applies_a_stray_wal_record() {
    use common::gate::On;
    use reef_format::{Entry, Limits, OpKind, WalOp, WalRecord, WalRequest, encode_document};
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    let w = open(&mem, &clock).await;
    for i in 0..3 {
        put(&w, &format!("a{i}"), i).await.unwrap();
    }
    w.flush(NS).await.unwrap();
    let reader = Arc::new(open(&(gated.clone() as DynStore), &clock).await);
    assert!(reader.get(NS, "a0").await.unwrap().is_some());

    let gate = gated.arm_on(On::List, "/wal/");
    let refresh = {
        let reader = Arc::clone(&reader);
        tokio::spawn(async move { reader.refresh(NS).await })
    };
    gate.reached.await.unwrap();
    let q = open(&mem, &clock).await;
    let b0 = put(&q, "b0", 10).await.unwrap();
    put(&q, "b1", 11).await.unwrap();
    q.flush(NS).await.unwrap();
    let mut no_grace = options(&clock).compactor;
    no_grace.gc_grace_ms = 0;
    let layout = Layout::new(NS).unwrap();
    assert!(
        reef_compactor::gc(&mem, &layout, &no_grace)
            .await
            .unwrap()
            .wal
            >= 2
    );
    // A stale writer (it last saw lsn 3) lands its record at lsn 4 now.
    let doc = encode_document(&common::doc(&[("v", 666)]), &Limits::default()).unwrap();
    let stray = WalRecord {
        lsn: b0.lsn,
        writer_id: 0x5757,
        timestamp_ms: 0,
        requests: vec![WalRequest {
            idempotency_key: None,
            fingerprint: 1,
            skipped: 0,
            ops: vec![WalOp {
                kind: OpKind::Upsert,
                entry: Entry::put("stray", 4, bytes::Bytes::from(doc)),
            }],
        }],
    };
    let objects = reef_manifest::Objects::new(Arc::clone(&mem), layout);
    assert!(matches!(
        objects.put_wal(&stray).await.unwrap(),
        reef_manifest::store::PutOutcome::Written(_)
    ));
    gate.release.send(()).unwrap();
    refresh.await.unwrap().unwrap();

    assert!(
        reader.get(NS, "stray").await.unwrap().is_none(),
        "a never-acknowledged stray record was applied"
    );
    for id in ["a0", "b0", "b1"] {
        assert!(
            reader.get(NS, id).await.unwrap().is_some(),
            "{id} is acknowledged"
        );
    }
}

/// Review finding B: a writer's put lands but its response is lost; a
/// fold covers the record and GC collects it before the writer's retry
/// reads the slot back. The writer must not plan the batch again (that
/// would reject it, or apply it twice): the manifest remembers that the
/// fold took this writer's record, so the write is acknowledged as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_whose_record_was_folded_is_not_retried_as_new() {
    use common::gate::On;
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    let writer = Arc::new(open(&(gated.clone() as DynStore), &clock).await);
    let wal1 = "/wal/00000000000000000001";
    let landed = gated.arm_on(On::PutThenLoseResponse, wal1);
    let write = {
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            let op = common::with_if(
                common::upsert("a", common::doc(&[("v", 1)])),
                reef_format::Precondition::Absent,
            );
            writer.write(NS, common::request(vec![op])).await
        })
    };
    landed.reached.await.unwrap();
    let layout = Layout::new(NS).unwrap();
    let folded = reef_compactor::fold(&mem, &layout, &options(&clock).compactor, None)
        .await
        .unwrap();
    assert_eq!(folded.records, 1, "the fold took the writer's record");
    let read_back = gated.arm_on(On::Get, wal1);
    landed.release.send(()).unwrap();
    read_back.reached.await.unwrap();
    let mut no_grace = options(&clock).compactor;
    no_grace.gc_grace_ms = 0;
    assert_eq!(
        reef_compactor::gc(&mem, &layout, &no_grace)
            .await
            .unwrap()
            .wal,
        1
    );
    read_back.release.send(()).unwrap();
    let outcome = write.await.unwrap();

    let r = outcome.expect("acknowledged: the fold took this writer's record");
    assert_eq!((r.lsn, r.upserted), (1, 1));
    assert_kept(&mem, &clock, "a", &Ok(r)).await;
}

/// Second review: one writer instance can put two different records at
/// one LSN. Its fence read fails after batch X landed at lsn 1 (X's caller
/// is told the outcome is unknown, and the writer's state stays at lsn 0);
/// a compactor folds X; the writer's next batch Y is planned at lsn 1 too.
/// Y must not be acknowledged because "the fold took this writer's record"
/// (it took X): Y is re-planned and lands whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_record_acknowledges_only_itself_not_a_later_batch_at_its_lsn() {
    use common::gate::On;
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    let writer = open(&(gated.clone() as DynStore), &clock).await;
    assert!(writer.get(NS, "x").await.unwrap().is_none()); // opened
    let fail = gated.arm_on(On::FailGet, "/HEAD");
    fail.release.send(()).unwrap();
    assert!(put(&writer, "x", 1).await.is_err(), "X's fence read failed");
    let layout = Layout::new(NS).unwrap();
    let folded = reef_compactor::fold(&mem, &layout, &options(&clock).compactor, None)
        .await
        .unwrap();
    assert_eq!(folded.records, 1, "the compactor folded X");
    let y = put(&writer, "y", 2).await;
    assert_kept(&mem, &clock, "y", &y).await;
    assert!(y.is_ok(), "Y is re-planned and committed: {y:?}");
}

/// Found by the simulation (seed 3986): two GC runs overlap. GC A loads
/// its "now" manifest N; before A reads N again to collect what N
/// references, GC B raises the floor past N and deletes it. A must still
/// count N's segments as reachable (it holds N in memory), or it deletes
/// a segment the current manifest lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gc_whose_now_manifest_is_collected_keeps_its_segments() {
    use common::gate::On;
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gated = Arc::new(GateStore::new(Arc::clone(&mem)));
    let clock = ManualClock::new(1_000_000_000);
    let e = open(&mem, &clock).await;
    let a = put(&e, "a", 1).await;
    e.flush(NS).await.unwrap(); // v1: the segment holding `a`, based on v0

    // GC A (a long grace: it raises no floor itself) loads v1 as current,
    // then is held at its segment listing.
    let listed = gated.arm_on(On::List, "/seg/");
    let store: DynStore = gated.clone();
    let layout = Layout::new(NS).unwrap();
    let mut slow = options(&clock).compactor;
    slow.gc_grace_ms = 24 * 60 * MIN;
    let gc_a = tokio::spawn({
        let (store, layout, slow) = (Arc::clone(&store), layout.clone(), slow.clone());
        async move { reef_compactor::gc(&store, &layout, &slow).await }
    });
    listed.reached.await.unwrap();

    // Meanwhile: another write and fold (v2), and GC B raises the floor
    // (v3, floor 3) and collects v1 and v2.
    let b = put(&e, "b", 2).await;
    e.flush(NS).await.unwrap();
    let mut eager = options(&clock).compactor;
    eager.gc_grace_ms = 0;
    reef_compactor::gc(&mem, &layout, &eager).await.unwrap();

    // A goes on: its "now" is v3 (floor 3); hold it at its pin listing,
    // right before it reads v3 again.
    let first_pins = gated.arm_on(On::List, "/checkpoint/");
    drop(listed.release);
    first_pins.reached.await.unwrap();
    let second_pins = gated.arm_on(On::List, "/checkpoint/");
    drop(first_pins.release);
    second_pins.reached.await.unwrap();
    // One more fold (v4), and GC C raises the floor past it (v5, floor
    // 5) and deletes v3 and v4.
    let c = put(&e, "c", 3).await;
    e.flush(NS).await.unwrap();
    reef_compactor::gc(&mem, &layout, &eager).await.unwrap();
    drop(second_pins.release);
    gc_a.await.unwrap().unwrap();

    assert_kept(&mem, &clock, "a", &a).await;
    assert_kept(&mem, &clock, "b", &b).await;
    assert_kept(&mem, &clock, "c", &c).await;
}

/// A manifest that goes backwards (a lower `last_applied_lsn` or
/// `last_version` than the one adopted: only damage, or a repair that
/// broke M1, makes one) is refused loudly, never adopted: adopting it would
/// drop what the engine folded out of its memtable and serve the rest as
/// if it never existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_goes_backwards_is_refused_not_adopted() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000);
    let e = open(&store, &clock).await;
    put(&e, "a", 1).await.unwrap();
    put(&e, "b", 2).await.unwrap();
    e.flush(NS).await.unwrap();
    let manifests = reef_manifest::ManifestStore::new(Arc::clone(&store), Layout::new(NS).unwrap());
    let current = manifests.load_current().await.unwrap().unwrap();
    let backwards = reef_format::Manifest {
        version: current.version + 1,
        ..reef_format::Manifest::default()
    };
    manifests.commit(&backwards).await.unwrap();
    let wrote = put(&e, "c", 3).await;
    assert!(
        matches!(wrote, Err(reef_engine::Error::Inconsistent { .. })),
        "{wrote:?}"
    );
    match e.get(NS, "a").await {
        Ok(Some(doc)) => assert_eq!(doc.doc.get("v"), Some(&Value::I64(1))),
        Ok(None) => panic!("a acknowledged and folded, read back as missing"),
        Err(err) => assert!(
            matches!(err, reef_engine::Error::Inconsistent { .. }),
            "{err:?}"
        ),
    }
}
