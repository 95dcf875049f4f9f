//! What maintenance and listing cost on a store, in requests and wall
//! time (docs/benchmarks.md, "Maintenance and listing"):
//!
//! - fold, forced compaction and GC of a namespace written in 20 batches
//!   of 50 documents (the fold after the first 10 batches, then the rest);
//! - listing 10,000 objects under one prefix, page by page;
//! - `Engine::namespaces` with 100 namespaces of 1,000 objects each.
//!
//! ```text
//! cargo run --release -p reef-engine --example store_costs -- local [DIR]
//! cargo run --release -p reef-engine --example store_costs -- s3
//! ```
//! `s3` uses the server the `REEF_S3_*` variables name (`.ci/s3/rgw.sh
//! start DIR` prints them), or a moto server if installed.

use std::sync::Arc;
// A measurement tool: real wall time is what it reports.
#[allow(clippy::disallowed_types)]
use std::time::Instant;

use bytes::Bytes;
use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{CountingStore, DynStore, LocalStore, ObjectStore, list_all};
use reef_manifest::testing::{S3Server, TempDir};

/// Puts `n` small objects named by `key(i)`, 32 at a time.
async fn fill(store: &DynStore, n: usize, key: impl Fn(usize) -> String) {
    let keys: Vec<String> = (0..n).map(key).collect();
    for chunk in keys.chunks(32) {
        let puts = chunk.iter().map(|k| store.put(k, Bytes::from_static(b"x")));
        for r in futures_join(puts).await {
            r.expect("put");
        }
    }
}

async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::with_capacity(handles.len());
    // Concurrency without another dependency: poll them all in one task.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

fn request(batch: usize) -> WriteRequest {
    let ops = (0..50)
        .map(|i| Op {
            kind: OpKind::Upsert,
            id: format!("doc/{batch:04}/{i:03}"),
            doc: Some(Document::from_iter([(
                "n".to_owned(),
                Value::I64((batch * 50 + i) as i64),
            )])),
            precondition: None,
        })
        .collect();
    WriteRequest {
        ops,
        idempotency_key: None,
    }
}

/// Runs `f`, printing its requests and wall time as a table row.
async fn measure<T>(
    name: &str,
    counting: &CountingStore<DynStore>,
    f: impl std::future::Future<Output = T>,
) -> T {
    let before = counting.counts();
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let out = f.await;
    let took = start.elapsed();
    let c = counting.counts().since(&before);
    println!(
        "| {name} | {} | {} | {} | {} | {:.1} |",
        c.requests(),
        c.get + c.get_range + c.head,
        c.put + c.put_if_absent + c.put_if_match + c.delete,
        c.list,
        took.as_secs_f64() * 1000.0
    );
    out
}

async fn run(label: &str, raw: DynStore) {
    let counting = Arc::new(CountingStore::new(Arc::clone(&raw)));
    let store: DynStore = counting.clone();
    println!("\n{label}\n");
    println!("| operation | requests | reads | writes | lists | ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let options = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    let engine = Engine::open(Arc::clone(&store), options)
        .await
        .expect("open");
    for b in 0..10 {
        engine.write("m", request(b)).await.expect("write");
    }
    measure(
        "fold (10 WAL objects, 500 docs)",
        &counting,
        engine.flush("m"),
    )
    .await
    .expect("fold");
    for b in 10..20 {
        engine.write("m", request(b)).await.expect("write");
    }
    measure("fold (10 more)", &counting, engine.flush("m"))
        .await
        .expect("fold");
    measure(
        "compact (force, 2 segments)",
        &counting,
        engine.compact("m", true),
    )
    .await
    .expect("compact");
    measure("gc", &counting, engine.gc("m")).await.expect("gc");
    engine.close().await.expect("close");

    fill(&store, 10_000, |i| format!("listing/{i:06}")).await;
    let listed = measure(
        "list 10,000 objects (all pages)",
        &counting,
        list_all(store.as_ref(), "listing/"),
    )
    .await
    .expect("list");
    assert_eq!(listed.len(), 10_000);

    fill(&store, 100_000, |i| {
        format!("ns/n{:03}/wal/{:06}.wal", i / 1000, i % 1000)
    })
    .await;
    let engine = Engine::open(Arc::clone(&store), EngineOptions::default())
        .await
        .expect("open");
    let names = measure(
        "namespaces (101 namespaces, 100k objects)",
        &counting,
        engine.namespaces(),
    )
    .await
    .expect("namespaces");
    assert_eq!(names.len(), 101, "100 filled and \"m\"");
    let all = measure(
        "for comparison: list every object under ns/",
        &counting,
        list_all(store.as_ref(), "ns/"),
    )
    .await
    .expect("list");
    assert!(all.len() >= 100_000);
    engine.close().await.expect("close");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("local") => {
            let temp = TempDir::new("store-costs");
            let dir = args
                .get(1)
                .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
            rt.block_on(run("local disk (fsync)", Arc::new(LocalStore::new(dir))));
        }
        Some("s3") => {
            let server = S3Server::start().expect("an S3 server: set REEF_S3_* (.ci/s3/rgw.sh)");
            let label = format!("S3 ({})", server.kind());
            rt.block_on(run(&label, Arc::new(server.store("costs"))));
        }
        _ => {
            eprintln!("usage: store_costs local [DIR] | s3");
            std::process::exit(2);
        }
    }
}
