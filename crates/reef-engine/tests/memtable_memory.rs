//! The memtable's budget (`memtable_bytes_max`) bounds what it really
//! holds on the heap: documents, ids and the index around them, for small
//! documents (where the index dominates) and large ones (where a
//! document's buffer could keep slack from growing while it was encoded).
//!
//! Heap bytes are counted by dhat's allocator (bytes requested, so the
//! allocator's own per-block overhead, which the budget also covers, is
//! not in them). One test in this file: one profiler per process.

use std::sync::Arc;

use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};
use reef_manifest::testing::TempDir;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const DOCS: usize = 4096;
const DOCS_PER_REQUEST: usize = 256;

fn request(first: usize, body_bytes: usize) -> WriteRequest {
    let ops = (first..first + DOCS_PER_REQUEST)
        .map(|n| Op {
            kind: OpKind::Upsert,
            id: format!("doc-{n:08}"),
            doc: Some(Document::from_iter([
                ("n".to_owned(), Value::I64(n as i64)),
                ("body".to_owned(), Value::String("x".repeat(body_bytes))),
            ])),
            precondition: None,
        })
        .collect();
    WriteRequest {
        ops,
        idempotency_key: None,
    }
}

fn heap_bytes() -> u64 {
    dhat::HeapStats::get().curr_bytes as u64
}

/// Writes `DOCS` documents of about `body_bytes` into namespace `ns` and
/// returns (heap bytes the engine kept, memtable bytes it accounted).
async fn fill(engine: &Engine, ns: &str, body_bytes: usize) -> (u64, u64) {
    // The namespace's first write opens it: not part of what is measured.
    engine.write(ns, request(DOCS, body_bytes)).await.unwrap();
    let accounted_before = engine.stats(ns).await.unwrap().memtable_bytes;
    let heap_before = heap_bytes();
    for first in (0..DOCS).step_by(DOCS_PER_REQUEST) {
        engine.write(ns, request(first, body_bytes)).await.unwrap();
    }
    let heap_after = heap_bytes();
    let accounted = engine.stats(ns).await.unwrap().memtable_bytes - accounted_before;
    (heap_after.saturating_sub(heap_before), accounted)
}

#[test]
fn the_memtable_budget_counts_what_the_memtable_holds() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A local directory: the WAL objects stay on disk, not on the
        // heap being measured (as a memory store would keep them).
        let dir = TempDir::new("memtable-memory");
        let store: DynStore = Arc::new(LocalStore::new(dir.path()));
        let engine = Engine::open(
            store,
            EngineOptions {
                // Nothing folds: every document stays in the memtable.
                background: false,
                ..EngineOptions::default()
            },
        )
        .await
        .unwrap();
        for (ns, body_bytes) in [("small", 100), ("large", 4000)] {
            let (held, accounted) = fill(&engine, ns, body_bytes).await;
            eprintln!(
                "{ns}: {DOCS} documents of ~{body_bytes} bytes: heap {held} bytes \
                 ({} per document), accounted {accounted} ({} per document)",
                held / DOCS as u64,
                accounted / DOCS as u64
            );
            assert!(
                held <= accounted,
                "{ns}: the memtable holds {held} heap bytes but its budget counts {accounted}"
            );
            // And the count does not overstate by much (the budget is
            // memory users configured, not a guess far above it).
            assert!(
                accounted <= held + held / 2,
                "{ns}: the budget counts {accounted} bytes for {held} held"
            );
        }
        engine.close().await.unwrap();
    });
}
