//! Recovery from the bucket alone, and writing through faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reef_engine::{Engine, EngineOptions, Error, ErrorKind, ScanRange};
use reef_manifest::store::{DynStore, FaultPlan, FaultyStore, MemoryStore, ObjectStore};

async fn engine(store: &DynStore) -> Engine {
    Engine::open(Arc::clone(store), EngineOptions::default())
        .await
        .unwrap()
}

async fn write_n(e: &Engine, ns: &str, n: i64) {
    for i in 0..n {
        let req = common::request(vec![common::upsert(
            &format!("id{i}"),
            common::doc(&[("i", i)]),
        )]);
        e.write(ns, req).await.unwrap();
    }
}

#[tokio::test]
async fn a_wal_hole_is_an_error_naming_the_object() {
    let store: DynStore = Arc::new(MemoryStore::new());
    write_n(&engine(&store).await, "h", 3).await;
    store
        .delete("ns/h/wal/00000000000000000002.wal")
        .await
        .unwrap();
    let err = engine(&store).await.get("h", "id0").await.unwrap_err();
    assert!(matches!(err, Error::Inconsistent { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ns/h/wal/00000000000000000002.wal is missing"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

#[tokio::test]
async fn a_corrupt_wal_record_is_an_error_naming_the_object() {
    let store: DynStore = Arc::new(MemoryStore::new());
    write_n(&engine(&store).await, "c", 3).await;
    let key = "ns/c/wal/00000000000000000002.wal";
    let mut bytes = store.get(key).await.unwrap().unwrap().bytes.to_vec();
    bytes[30] ^= 0x10;
    store.put(key, Bytes::from(bytes)).await.unwrap();
    let err = engine(&store).await.get("c", "id0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains(key), "{err}");
}

#[tokio::test]
async fn idempotency_survives_restart_and_conflicts_are_typed() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let mut req = common::request(vec![common::upsert("a", common::doc(&[("v", 1)]))]);
    req.idempotency_key = Some("once".into());
    let first = engine(&store).await.write("i", req.clone()).await.unwrap();
    let e = engine(&store).await;
    let again = e.write("i", req.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.lsn, again.first_version),
        (first.lsn, first.first_version)
    );
    assert_eq!(
        e.stats("i").await.unwrap().last_lsn,
        1,
        "a replay writes nothing"
    );
    req.ops = vec![common::upsert("a", common::doc(&[("v", 2)]))];
    let err = e.write("i", req).await.unwrap_err();
    assert!(matches!(err, Error::IdempotencyConflict { .. }) && err.kind() == ErrorKind::Conflict);
    assert_eq!(
        e.get("i", "a").await.unwrap().unwrap().doc,
        common::doc(&[("v", 1)])
    );
}

#[tokio::test]
async fn a_read_only_engine_sees_writes_after_refresh() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let writer = engine(&store).await;
    write_n(&writer, "r", 2).await;
    let reader = Engine::open(
        Arc::clone(&store),
        EngineOptions {
            read_only: true,
            ..EngineOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        reader.scan("r", &ScanRange::default()).await.unwrap().len(),
        2
    );
    write_n(&writer, "r", 5).await;
    assert_eq!(
        reader.scan("r", &ScanRange::default()).await.unwrap().len(),
        2,
        "stale until refresh"
    );
    reader.refresh("r").await.unwrap();
    assert_eq!(
        reader.scan("r", &ScanRange::default()).await.unwrap().len(),
        5
    );
    let err = reader
        .write("r", common::request(vec![common::delete("id0")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }));
}

#[tokio::test]
async fn snapshots_do_not_see_later_writes() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let e = engine(&store).await;
    write_n(&e, "s", 2).await;
    let snap = e.snapshot("s").await.unwrap();
    e.write(
        "s",
        common::request(vec![
            common::delete("id0"),
            common::upsert("id9", common::doc(&[])),
        ]),
    )
    .await
    .unwrap();
    assert!(snap.get("id0").await.unwrap().is_some());
    assert!(snap.get("id9").await.unwrap().is_none());
    assert_eq!(snap.scan(&ScanRange::default()).await.unwrap().len(), 2);
    assert!(e.get("s", "id0").await.unwrap().is_none());
}

#[tokio::test]
async fn writers_wait_then_fail_when_unfolded_data_exceeds_the_budget() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let opts = EngineOptions {
        memtable_bytes_max: 200,
        backpressure_wait_max: Duration::from_millis(50),
        ..EngineOptions::default()
    };
    let e = Engine::open(store, opts).await.unwrap();
    let big = common::doc(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)]);
    let mut overloaded = None;
    for i in 0..20 {
        match e
            .write(
                "b",
                common::request(vec![common::upsert(&format!("k{i}"), big.clone())]),
            )
            .await
        {
            Ok(_) => {}
            Err(err) => {
                overloaded = Some(err);
                break;
            }
        }
    }
    let err = overloaded.expect("the budget must stop writers");
    assert!(
        matches!(err, Error::Overloaded { .. }) && err.kind() == ErrorKind::Transient,
        "{err}"
    );
    let mem = e.stats("b").await.unwrap().memtable_bytes;
    assert!(mem < 400, "memory stays near the budget: {mem}");
}

/// Lost responses and transient failures: writes still succeed exactly
/// once (a lost PUT response is recognised as ours by reading it back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_lost_responses_and_transient_errors() {
    let inner = MemoryStore::new();
    let plan = FaultPlan {
        seed: 11,
        transient_rate: 0.2,
        lost_response_rate: 0.2,
        ..FaultPlan::default()
    };
    let faulty: DynStore = Arc::new(FaultyStore::new(inner.clone(), plan));
    let e = Engine::open(faulty, EngineOptions::default())
        .await
        .unwrap();
    let mut acked = 0;
    for i in 0..40i64 {
        let req = common::request(vec![common::upsert(
            &format!("f{i}"),
            common::doc(&[("i", i)]),
        )]);
        match e.write("f", req).await {
            Ok(r) => {
                acked += 1;
                assert_eq!(
                    r.first_version,
                    Some(acked),
                    "one version per acknowledged write"
                );
            }
            Err(err) => panic!("write {i} failed: {err}"),
        }
    }
    // Recovered from the bucket alone: every write present exactly once.
    let clean: DynStore = Arc::new(inner);
    let fresh = engine(&clean).await;
    let docs = fresh.scan("f", &ScanRange::default()).await.unwrap();
    assert_eq!(docs.len(), 40);
    assert_eq!(
        fresh.stats("f").await.unwrap().last_version,
        40,
        "no write applied twice"
    );
}

/// A caller that gives up after its request was queued does not strand
/// it: the leader commits it, and `close` returns only after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_writes_whose_callers_gave_up() {
    let inner = MemoryStore::new();
    // Slow PUTs, so the write is surely still in flight when dropped.
    let slow: DynStore = Arc::new(FaultyStore::new(
        inner.clone(),
        FaultPlan {
            delay_ms_max: 20,
            seed: 5,
            ..FaultPlan::default()
        },
    ));
    let e = Engine::open(slow, EngineOptions::default()).await.unwrap();
    e.get("g", "warm-up").await.unwrap(); // the namespace is open: the next poll enqueues
    let req = common::request(vec![common::upsert("abandoned", common::doc(&[("x", 1)]))]);
    let gave_up = tokio::time::timeout(Duration::from_micros(50), e.write("g", req)).await;
    assert!(
        gave_up.is_err(),
        "the write should still have been in flight"
    );
    e.close().await.unwrap();
    let clean: DynStore = Arc::new(inner);
    let doc = engine(&clean).await.get("g", "abandoned").await.unwrap();
    assert!(
        doc.is_some(),
        "a queued request is committed even if its caller left"
    );
}
