//! A listing is not a snapshot (issue #14): objects created while a
//! directory or bucket is being listed can appear while older ones do not.
//! A gap in a WAL listing must be checked by reading the key itself before
//! it is called a hole; a true hole is still an error naming the object.

mod common;

use std::sync::Arc;

use common::gate::GateStore;
use reef_engine::{Engine, EngineOptions};
use reef_manifest::store::{DynStore, MemoryStore, ObjectStore};

fn options() -> EngineOptions {
    EngineOptions {
        background: false,
        ..EngineOptions::default()
    }
}

async fn three_writes(store: &DynStore) {
    let e = Engine::open(Arc::clone(store), options()).await.unwrap();
    for id in ["a", "b", "c"] {
        e.write(
            "h",
            common::request(vec![common::upsert(id, common::doc(&[("v", 1)]))]),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_gap_in_a_listing_is_read_directly_not_called_a_hole() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    three_writes(&mem).await;
    let gappy = Arc::new(GateStore::new(Arc::clone(&mem)));
    gappy.hide_from_listings("ns/h/wal/00000000000000000002.wal");
    let gappy: DynStore = gappy;
    // Recovery and a fold both read the WAL through the gappy listing.
    let e = Engine::open(Arc::clone(&gappy), options()).await.unwrap();
    for id in ["a", "b", "c"] {
        assert!(e.get("h", id).await.unwrap().is_some(), "{id}");
    }
    let folded = e.flush("h").await.unwrap();
    assert_eq!(folded.records, 3, "{folded:?}");
}

#[tokio::test]
async fn a_true_hole_is_an_error_naming_the_object() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    three_writes(&mem).await;
    mem.delete("ns/h/wal/00000000000000000002.wal")
        .await
        .unwrap();
    let e = Engine::open(Arc::clone(&mem), options()).await.unwrap();
    let err = e.get("h", "a").await.unwrap_err().to_string();
    assert!(
        err.contains("WAL hole") && err.contains("ns/h/wal/00000000000000000002.wal"),
        "{err}"
    );
}

/// A flush that cannot fold what this engine acknowledged says so: here
/// the only WAL object is left out of every listing after the write, so
/// every fold finds nothing to take. The flush ends with `FlushStalled`
/// (retryable), not `Ok` with the write unfolded, which `reef checkpoint
/// create` would have pinned without it.
#[tokio::test]
async fn a_flush_that_folds_nothing_is_an_error_not_ok() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    let gappy = Arc::new(GateStore::new(Arc::clone(&mem)));
    let store: DynStore = gappy.clone();
    let e = Engine::open(store, options()).await.unwrap();
    e.write(
        "h",
        common::request(vec![common::upsert("a", common::doc(&[("v", 1)]))]),
    )
    .await
    .unwrap();
    gappy.hide_from_listings("ns/h/wal/00000000000000000001.wal");
    let err = e.flush("h").await.unwrap_err();
    assert_eq!(err.kind(), reef_engine::ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("flush stalled"), "{err}");
    // Once the listing shows it again, the flush folds it.
    gappy.hide_from_listings("nothing");
    assert_eq!(e.flush("h").await.unwrap().records, 1);
}
