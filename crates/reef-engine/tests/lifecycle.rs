//! Folds, compactions and GC under readers and writers: leases keep
//! snapshots readable; content is conserved (`written = live + dropped`)
//! and a broken account is caught; a stale writer cannot acknowledge into
//! a WAL slot that GC freed (DESIGN §3.2).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reef_engine::{Engine, EngineOptions, Error, ErrorKind};
use reef_format::Manifest;
use reef_manifest::store::{DynStore, MemoryStore, ObjectStore};
use reef_manifest::{Layout, ManifestStore, ManualClock, Objects, Pins};

fn options(clock: &ManualClock) -> EngineOptions {
    // Snapshot leases outlive the clock jumps these tests make (their
    // renewals run on real time).
    let mut o = EngineOptions {
        background: false,
        snapshot_lease_ttl_ms: 24 * 3_600_000,
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

async fn put(e: &Engine, id: &str, v: i64) {
    e.write(
        "l",
        common::request(vec![common::upsert(id, common::doc(&[("v", v)]))]),
    )
    .await
    .unwrap();
}

async fn value(doc: Option<reef_engine::Doc>) -> Option<reef_format::Value> {
    doc.and_then(|d| d.doc.get("v").cloned())
}

async fn segments(store: &DynStore) -> Vec<u128> {
    Objects::new(Arc::clone(store), Layout::new("l").unwrap())
        .list_segments()
        .await
        .unwrap()
}

fn far(o: &EngineOptions) -> u64 {
    o.compactor.gc_grace_ms + reef_manifest::LEASE_CLOCK_SKEW_MS + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_lease_keeps_its_segments_through_compaction_and_gc() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let e = open(&store, &clock).await;
    put(&e, "a", 1).await;
    put(&e, "b", 1).await;
    e.flush("l").await.unwrap();
    put(&e, "a", 2).await;
    e.flush("l").await.unwrap();
    let before = segments(&store).await;
    let snap = e.snapshot("l").await.unwrap();

    // Everything the snapshot reads is rewritten and superseded.
    put(&e, "a", 3).await;
    e.write("l", common::request(vec![common::delete("b")]))
        .await
        .unwrap();
    e.flush("l").await.unwrap();
    assert!(
        e.compact("l", true)
            .await
            .unwrap()
            .manifest_version
            .is_some()
    );
    clock.advance(far(&options(&clock)));
    e.gc("l").await.unwrap();
    let after_gc = segments(&store).await;
    assert!(
        before.iter().all(|s| after_gc.contains(s)),
        "leased segments survive GC"
    );
    assert_eq!(
        value(snap.get("a").await.unwrap()).await,
        Some(reef_format::Value::I64(2))
    );
    assert_eq!(
        value(snap.get("b").await.unwrap()).await,
        Some(reef_format::Value::I64(1))
    );
    assert_eq!(
        value(e.get("l", "a").await.unwrap()).await,
        Some(reef_format::Value::I64(3))
    );
    assert!(e.get("l", "b").await.unwrap().is_none());

    // Released: the next GC reclaims them.
    drop(snap);
    tokio::time::sleep(Duration::from_millis(50)).await; // the release runs on a task
    let pins = Pins::new(
        Arc::clone(&store),
        Layout::new("l").unwrap(),
        Arc::new(clock.clone()),
        Arc::new(reef_manifest::SystemRng::new()),
    );
    assert!(
        pins.leases().await.unwrap().is_empty(),
        "dropping the snapshot released its lease"
    );
    clock.advance(far(&options(&clock)));
    let report = e.gc("l").await.unwrap();
    let remaining = segments(&store).await;
    assert!(before.iter().all(|s| !remaining.contains(s)), "{report:?}");
    assert_eq!(
        remaining.len(),
        1,
        "only the compacted level-1 segment is left"
    );
}

#[tokio::test]
async fn an_expired_lease_stops_pinning() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let e = open(&store, &clock).await;
    put(&e, "a", 1).await;
    e.flush("l").await.unwrap();
    let first = segments(&store).await;
    // A reader that took a lease and then vanished without releasing it.
    let pins = Pins::new(
        Arc::clone(&store),
        Layout::new("l").unwrap(),
        Arc::new(clock.clone()),
        Arc::new(reef_manifest::SystemRng::new()),
    );
    pins.acquire("vanished reader", 1, 1_000).await.unwrap();
    put(&e, "a", 2).await;
    e.flush("l").await.unwrap();
    e.compact("l", true).await.unwrap();
    clock.advance(far(&options(&clock)));
    let report = e.gc("l").await.unwrap();
    assert_eq!(report.leases, 1, "the expired lease is deleted");
    let left = segments(&store).await;
    assert!(first.iter().all(|s| !left.contains(s)), "and pins nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_conserved_and_a_broken_account_is_caught() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let mut o = options(&clock);
    o.compactor.compaction_l0_trigger = 2;
    let e = Engine::open(Arc::clone(&store), o).await.unwrap();
    let manifests = ManifestStore::new(Arc::clone(&store), Layout::new("l").unwrap());
    for round in 0..6 {
        for i in 0..20 {
            put(&e, &format!("k{}", i % 7), round * 100 + i).await;
        }
        e.write("l", common::request(vec![common::delete("k3")]))
            .await
            .unwrap();
        e.flush("l").await.unwrap();
        e.compact("l", false).await.unwrap();
    }
    let versions = manifests.list_versions().await.unwrap();
    assert!(
        versions.len() >= 8,
        "folds and compactions committed: {versions:?}"
    );
    for v in &versions {
        let m = manifests.load(*v).await.unwrap().unwrap();
        m.check_accounting(&format!("manifest {v}")).unwrap();
    }
    let current = manifests.load_current().await.unwrap().unwrap();
    assert!(
        current.totals.dropped_count > 0,
        "superseded versions were dropped and counted"
    );
    assert!(current.totals.write_amplification().unwrap() > 1.0);

    // Corrupt the account: a manifest claiming an entry was never written.
    let mut broken: Manifest = current.clone();
    broken.version += 1;
    broken.totals.written_count += 1;
    assert!(broken.check_accounting("broken").is_err());
    let key = manifests.layout().manifest_key(broken.version);
    store
        .put_if_absent(&key, Bytes::from(broken.encode().unwrap()))
        .await
        .unwrap();
    put(&e, "after", 1).await;
    let err = e.flush("l").await.unwrap_err();
    assert!(err.to_string().contains("accounting broken"), "{err}");
}

/// DESIGN §3.2: writer A stalls; B takes over, writes, folds; GC deletes
/// the folded WAL; A wakes and writes into an LSN GC freed. A must not
/// acknowledge it: recovery (which replays only lsn > last_applied_lsn)
/// would drop it.
async fn stale_writer_schedule(fence: bool) -> (Result<reef_engine::WriteResult, Error>, Engine) {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let mut a_opts = options(&clock);
    a_opts.compactor.sabotage.skip_fence = !fence;
    let a = Engine::open(Arc::clone(&store), a_opts).await.unwrap();
    for i in 0..3 {
        put(&a, &format!("a{i}"), i).await;
    }
    // B takes over: writes lsn 4 and 5, folds them, and GC (its clock past
    // every age) deletes the folded WAL, lsn 1..5.
    let b = open(&store, &clock).await;
    put(&b, "b0", 0).await;
    put(&b, "b1", 1).await;
    b.flush("l").await.unwrap();
    clock.advance(far(&options(&clock)));
    assert_eq!(b.gc("l").await.unwrap().wal, 5);
    // A wakes and writes: wal/4 is free again, so its put-if-absent
    // succeeds. No time has to pass for the fence to work.
    let stale = a
        .write(
            "l",
            common::request(vec![common::upsert("a-late", common::doc(&[("v", 9)]))]),
        )
        .await;
    let fresh = open(&store, &clock).await;
    (stale, fresh)
}

/// The fence finds lsn 4 folded from B's record (the manifest remembers
/// whose), so A's record there is a stray: A catches up and plans the
/// write again, at the next free LSN, against current state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_replans_instead_of_acknowledging_into_a_collected_slot() {
    let (stale, fresh) = stale_writer_schedule(true).await;
    let acked = stale.expect("re-planned and committed");
    assert_eq!(acked.lsn, 6, "after B's lsn 4 and 5");
    let doc = fresh
        .get("l", "a-late")
        .await
        .unwrap()
        .expect("acknowledged");
    assert_eq!(Some(doc.version), acked.last_version);
    for id in ["a0", "a1", "a2", "b0", "b1"] {
        assert!(fresh.get("l", id).await.unwrap().is_some(), "{id}");
    }
}

/// A writer so stale that the manifest no longer remembers whose record
/// was folded at its LSN cannot tell whether a fold took its record: it
/// answers `Fenced` (transient, outcome unknown) and acknowledges nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stale_beyond_the_remembered_window_is_fenced() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let a = open(&store, &clock).await;
    put(&a, "a0", 0).await;
    let b = open(&store, &clock).await;
    for i in 0..(reef_format::RECENT_WRITERS_MAX as i64 + 8) {
        put(&b, &format!("b{i}"), i).await;
    }
    b.flush("l").await.unwrap();
    clock.advance(far(&options(&clock)));
    assert!(b.gc("l").await.unwrap().wal > 0);
    let err = a
        .write(
            "l",
            common::request(vec![common::upsert("a-late", common::doc(&[("v", 9)]))]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { lsn: 2, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Transient, "reload and retry");
    let fresh = open(&store, &clock).await;
    assert!(
        fresh.get("l", "a-late").await.unwrap().is_none(),
        "not acknowledged, not visible"
    );
    // The writer adopted the newer manifest: its next write goes through.
    let ok = a
        .write(
            "l",
            common::request(vec![common::upsert("a-next", common::doc(&[("v", 1)]))]),
        )
        .await
        .unwrap();
    assert_eq!(ok.lsn, reef_format::RECENT_WRITERS_MAX as u64 + 10);
}

/// The negative control: a writer with the fence switched off (a test-only
/// knob) acknowledges a write that recovery then drops. This is the hole
/// the fence closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fence_the_acknowledged_write_is_lost() {
    let (stale, fresh) = stale_writer_schedule(false).await;
    let acked = stale.expect("the misconfigured writer acknowledges");
    assert_eq!(acked.lsn, 4);
    assert!(
        fresh.get("l", "a-late").await.unwrap().is_none(),
        "acknowledged, yet lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_takes_the_next_free_lsn() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let o = options(&clock);
    let a = Engine::open(Arc::clone(&store), o.clone()).await.unwrap();
    put(&a, "a0", 0).await;
    let b = Engine::open(Arc::clone(&store), o).await.unwrap();
    put(&b, "b0", 0).await;
    b.flush("l").await.unwrap();
    clock.advance(far(&options(&clock)));
    b.gc("l").await.unwrap();
    let req = common::request(vec![common::upsert("a1", common::doc(&[("v", 1)]))]);
    let ok = a.write("l", req).await.unwrap();
    assert_eq!(
        ok.lsn, 3,
        "fenced at 2 (B's record was folded there), the writer re-plans at 3"
    );
    let fresh = open(&store, &clock).await;
    assert!(fresh.get("l", "a1").await.unwrap().is_some());
}

/// An idle namespace's unfolded writes are folded once they are old
/// enough, with no further writes to trigger it; `close` waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unfolded_data_is_folded_by_age() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let opts = EngineOptions {
        fold_trigger_age: Duration::from_millis(40),
        ..EngineOptions::default()
    };
    let e = Engine::open(Arc::clone(&store), opts).await.unwrap();
    put(&e, "a", 1).await;
    assert_eq!(e.stats("l").await.unwrap().wal_objects, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while e.stats("l").await.unwrap().wal_objects > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never folded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = e.stats("l").await.unwrap();
    assert_eq!(
        (stats.manifest_version, stats.segments.get(&0).copied()),
        (1, Some(1))
    );
    e.close().await.unwrap();
}

/// Another process compacts and collects the segments this engine's
/// current view lists: its next read adopts the newer manifest instead of
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_segments_collected_by_another_process() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(1_000_000);
    let reader = open(&store, &clock).await;
    put(&reader, "a", 1).await;
    reader.flush("l").await.unwrap();
    put(&reader, "b", 2).await;
    reader.flush("l").await.unwrap();
    assert!(reader.get("l", "a").await.unwrap().is_some()); // view: two L0 segments
    // Another process compacts them away and collects them.
    let other = open(&store, &clock).await;
    other.compact("l", true).await.unwrap();
    clock.advance(far(&options(&clock)));
    assert!(other.gc("l").await.unwrap().segments >= 2);
    // The reader's view still lists the collected segments; uncached
    // blocks are gone, and it recovers by adopting the new manifest.
    let fresh = open(&store, &clock).await;
    drop(fresh);
    assert_eq!(
        value(reader.get("l", "b").await.unwrap()).await,
        Some(reef_format::Value::I64(2))
    );
    assert_eq!(
        reader
            .scan("l", &reef_engine::ScanRange::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A forced compaction that loses its commit to another compaction (the
/// background cycle, or another process) runs again: when it returns,
/// level 0 is empty. Played exactly: a standalone compaction of the first
/// segment is held at its commit; a fold adds a second; the engine's
/// forced compaction reads both and is held too; the first commits (it
/// rebases over the fold), and the engine's loses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_compaction_that_loses_the_race_runs_again() {
    let gated = Arc::new(common::gate::GateStore::new(Arc::new(MemoryStore::new())));
    let store: DynStore = gated.clone();
    let clock = ManualClock::new(1_000_000);
    let e = open(&store, &clock).await;
    put(&e, "a", 1).await;
    e.flush("l").await.unwrap();

    let first = gated.arm("/manifest/");
    let (s, copts) = (Arc::clone(&store), options(&clock).compactor);
    let other = tokio::spawn(async move {
        reef_compactor::compact(&s, &Layout::new("l").unwrap(), &copts, true).await
    });
    first.reached.await.unwrap();
    put(&e, "b", 2).await;
    e.flush("l").await.unwrap();

    let second = gated.arm("/manifest/");
    let e = Arc::new(e);
    let mine = tokio::spawn({
        let e = Arc::clone(&e);
        async move { e.compact("l", true).await }
    });
    second.reached.await.unwrap();
    drop(first.release);
    assert!(other.await.unwrap().unwrap().manifest_version.is_some());
    drop(second.release);
    mine.await.unwrap().unwrap();

    let stats = e.stats("l").await.unwrap();
    assert_eq!(stats.segments.get(&0), None, "level 0 compacted: {stats:?}");
    assert_eq!(
        e.scan("l", &reef_engine::ScanRange::default())
            .await
            .unwrap()
            .len(),
        2
    );
}
