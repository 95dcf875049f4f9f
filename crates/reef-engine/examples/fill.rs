//! Fills a namespace on a local directory with `MIB` MiB of documents
//! (ids `doc-00000000`…, each `{"n": i, "body": <DOC_BYTES letters>}`),
//! 256 documents per request, then flushes and compacts it: the data set
//! for measuring `reef verify --deep` and the admin tools at size
//! (docs/benchmarks.md, "Admin tools at 1 GB").
//!
//! ```text
//! cargo run --release -p reef-engine --example fill -- DIR NS MIB [DOC_BYTES]
//! ```

use std::sync::Arc;
// A measurement tool: real wall time is what it reports.
#[allow(clippy::disallowed_types)]
use std::time::Instant;

use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};

const DOCS_PER_REQUEST: usize = 256;

fn body(i: usize, len: usize) -> String {
    // Letters from a cheap generator, so no two bodies repeat.
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(ns), Some(mib)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: fill DIR NS MIB [DOC_BYTES]");
        std::process::exit(2);
    };
    let mib: usize = mib.parse().expect("MIB is a number");
    let doc_bytes: usize = args.get(4).map_or(4000, |d| d.parse().expect("DOC_BYTES"));
    let target = mib << 20;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(dir));
        let engine = Engine::open(store, EngineOptions::default())
            .await
            .expect("open");
        let started = Instant::now();
        let (mut written, mut i) = (0usize, 0usize);
        while written < target {
            let ops = (0..DOCS_PER_REQUEST)
                .map(|k| {
                    let n = i + k;
                    Op {
                        kind: OpKind::Upsert,
                        id: format!("doc-{n:08}"),
                        doc: Some(Document::from_iter([
                            ("n".to_owned(), Value::I64(n as i64)),
                            ("body".to_owned(), Value::String(body(n, doc_bytes))),
                        ])),
                        precondition: None,
                    }
                })
                .collect();
            engine
                .write(
                    ns,
                    WriteRequest {
                        ops,
                        idempotency_key: None,
                    },
                )
                .await
                .expect("write");
            i += DOCS_PER_REQUEST;
            written += DOCS_PER_REQUEST * (doc_bytes + 32);
        }
        engine.flush(ns).await.expect("flush");
        engine.compact(ns, true).await.expect("compact");
        let stats = engine.stats(ns).await.expect("stats");
        engine.close().await.expect("close");
        println!(
            "{i} documents, about {} MiB of documents, in {:.1} s; manifest {}",
            written >> 20,
            started.elapsed().as_secs_f64(),
            stats.manifest_version
        );
    });
}
