//! On a real S3 server (CI's Ceph RGW), counted from the server's own
//! access log: a sequential run of writes, folds, a compaction and GC moves
//! HEAD by compare-and-swap without a single 412. (Before Reef sent bare
//! ETags, RGW refused every `If-Match` and HEAD never moved.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use reef_engine::{Engine, EngineOptions};
use reef_manifest::store::DynStore;
use reef_manifest::testing::S3Server;
use reef_manifest::{Layout, ManifestStore};

/// (PUTs of this test's HEAD, of which answered 412) in the access log.
fn head_puts(log: &std::path::Path, head_path: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let puts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("\"PUT {head_path} HTTP")))
        .collect();
    let refused = puts.iter().filter(|l| l.contains("\" 412 ")).count();
    (puts.len(), refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_cas_is_never_refused_during_fold_compact_and_gc() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let Some(log) = server.access_log() else {
        eprintln!("SKIPPING: this S3 server keeps no access log to count from (moto)");
        return;
    };
    let store: DynStore = Arc::new(server.store("headcas"));
    let manifests = ManifestStore::new(Arc::clone(&store), Layout::new("l").unwrap());
    let options = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    let engine = Engine::open(store, options).await.unwrap();
    for round in 0..3 {
        for i in 0..4 {
            let id = format!("d{round}-{i}");
            let op = common::upsert(&id, common::doc(&[("v", i)]));
            engine.write("l", common::request(vec![op])).await.unwrap();
        }
        let folded = engine.flush("l").await.unwrap();
        assert!(folded.manifest_version.is_some(), "{folded:?}");
    }
    let compacted = engine.compact("l", true).await.unwrap();
    assert!(compacted.manifest_version.is_some(), "{compacted:?}");
    engine.gc("l").await.unwrap();
    engine.close().await.unwrap();

    // "s3://bucket/prefix" → "/bucket/prefix/ns/l/HEAD", as the log shows it.
    let url = server.url("headcas");
    let head_path = format!("/{}/ns/l/HEAD", url.trim_start_matches("s3://"));
    // The gateway writes its log asynchronously: wait until it has them.
    let mut seen = head_puts(&log, &head_path);
    for _ in 0..50 {
        if seen.0 >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = head_puts(&log, &head_path);
    }
    let (puts, refused) = seen;
    assert!(puts >= 4, "only {puts} HEAD PUTs in {}", log.display());
    assert_eq!(
        refused, 0,
        "{refused} of {puts} HEAD compare-and-swaps answered 412"
    );
    // And HEAD did move: it names the newest manifest.
    let newest = manifests.load_current().await.unwrap().unwrap().version;
    assert!(newest >= 4, "three folds and a compaction: {newest}");
    assert_eq!(manifests.head_version().await.unwrap(), Some(newest));
}
