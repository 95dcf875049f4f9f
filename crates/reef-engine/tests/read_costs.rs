//! What reads cost in requests: a limited scan fetches only the blocks it
//! needs, a point read stops at the newest segment holding the id, and
//! adopting a newer manifest opens only the segments it adds.

mod common;

use std::sync::Arc;

use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_format::{Document, Value, WriteRequest};
use reef_manifest::store::{CountingStore, DynStore, MemoryStore};

fn padded(n: u64) -> Document {
    Document::from_iter([
        ("n".to_owned(), Value::I64(n as i64)),
        ("pad".to_owned(), Value::String("x".repeat(80))),
    ])
}

fn options() -> EngineOptions {
    EngineOptions {
        background: false,
        ..EngineOptions::default()
    }
}

fn counting() -> (Arc<CountingStore<MemoryStore>>, DynStore) {
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: DynStore = counting.clone();
    (counting, store)
}

async fn write_and_fold(engine: &Engine, ids: &[&str], n: u64) {
    let ops = ids.iter().map(|id| common::upsert(id, padded(n)));
    engine
        .write("s", WriteRequest::new(ops.collect::<Vec<_>>()))
        .await
        .unwrap();
    engine.flush("s").await.unwrap();
}

/// Before streaming, `limit` applied after every segment's whole range was
/// read: `scan --limit 1` fetched every block. Now it fetches the block
/// with the first document, and the next one (which could continue the
/// first block's last id, and which the next step would need anyway).
#[tokio::test]
async fn a_limited_scan_fetches_two_blocks_not_all() {
    let (counting, store) = counting();
    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    let ops: Vec<_> = (0..5000)
        .map(|i| common::upsert(&format!("k{i:05}"), padded(i)))
        .collect();
    engine.write("s", WriteRequest::new(ops)).await.unwrap();
    engine.flush("s").await.unwrap();
    engine.close().await.unwrap();

    // A fresh engine: nothing cached. Opening the namespace reads the
    // segment's footer and index; the scan then needs its first block only.
    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    assert!(engine.get("s", "k04999").await.unwrap().is_some());
    let before = counting.counts();
    let first = ScanRange {
        limit: Some(1),
        ..ScanRange::default()
    };
    let docs = engine.scan("s", &first).await.unwrap();
    assert_eq!(docs.len(), 1);
    let fetched = counting.counts().since(&before).get_range;
    assert_eq!(fetched, 2, "blocks fetched for one document");
    engine.close().await.unwrap();
}

/// Before read-ahead, a full scan fetched its segment one block per GET
/// (84 GETs here; on S3 each is a round trip). Now each GET takes twice
/// the blocks of the one before, up to 1 MiB (32 of these blocks): the
/// segment's 84 blocks take 1 + 2 + 4 + 8 + 16 + 32 + 21, 7 GETs.
#[tokio::test]
async fn a_full_scan_reads_ahead_in_growing_gets() {
    let (counting, store) = counting();
    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    let ops: Vec<_> = (0..20_000)
        .map(|i| common::upsert(&format!("k{i:05}"), padded(i)))
        .collect();
    engine.write("s", WriteRequest::new(ops)).await.unwrap();
    engine.flush("s").await.unwrap();
    engine.close().await.unwrap();

    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    // Opens the namespace; past the segment's last id, so no block.
    assert!(engine.get("s", "z").await.unwrap().is_none());
    let before = counting.counts();
    let docs = engine.scan("s", &ScanRange::default()).await.unwrap();
    assert_eq!(docs.len(), 20_000);
    let fetched = counting.counts().since(&before).get_range;
    assert!(
        (2..=7).contains(&fetched),
        "{fetched} GETs for a full scan of one segment"
    );
    engine.close().await.unwrap();
}

/// Before, a point read asked every segment whose id range and bloom
/// filter admitted the id, and kept the newest version found.
#[tokio::test]
async fn a_point_read_stops_at_the_newest_segment_holding_the_id() {
    let (counting, store) = counting();
    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    for n in 1..=3 {
        write_and_fold(&engine, &["a", "k", "z"], n).await;
    }
    engine.close().await.unwrap();

    let engine = Engine::open(Arc::clone(&store), options()).await.unwrap();
    assert!(engine.exists("s").await.unwrap());
    engine.refresh("s").await.unwrap(); // opens the three segments
    let before = counting.counts();
    let doc = engine.get("s", "k").await.unwrap().unwrap();
    assert_eq!(doc.doc, padded(3));
    let fetched = counting.counts().since(&before).get_range;
    assert_eq!(fetched, 1, "blocks fetched for one document in 3 segments");
    engine.close().await.unwrap();
}

/// Before, adopting a manifest opened every segment it listed again (two
/// ranged GETs each), not only the new ones.
#[tokio::test]
async fn adopting_a_manifest_opens_only_the_new_segments() {
    let (counting, store) = counting();
    let writer = Engine::open(Arc::clone(&store), options()).await.unwrap();
    for n in 1..=4 {
        write_and_fold(&writer, &["a"], n).await;
    }
    let reader = Engine::open(Arc::clone(&store), options()).await.unwrap();
    reader.refresh("s").await.unwrap();
    write_and_fold(&writer, &["b"], 5).await;
    let before = counting.counts();
    reader.refresh("s").await.unwrap();
    let opened = counting.counts().since(&before).get_range;
    assert_eq!(opened, 2, "ranged GETs to adopt one new segment among five");
    assert!(reader.get("s", "b").await.unwrap().is_some());
    writer.close().await.unwrap();
    reader.close().await.unwrap();
}
