//! Reef on an S3-compatible bucket: the same engine, another store URL.
//! The endpoint, region and credentials come from the usual `AWS_*`
//! variables (`AWS_ENDPOINT_URL` for anything but AWS itself). CI runs it
//! against its Ceph RGW.
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:7480 AWS_REGION=us-east-1 \
//! AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//!   cargo run -p reef-engine --example s3 -- s3://my-bucket/reef
//! ```

use futures_util::TryStreamExt;
use reef_engine::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: s3 s3://bucket/prefix")?;
    let engine = Engine::open(open_store(&url)?, EngineOptions::default()).await?;
    let ops = (0..100).map(|i| {
        let doc = Document::from_iter([("n".to_owned(), Value::I64(i))]);
        Op::upsert(format!("item-{i:03}"), doc)
    });
    // One WAL object, created with put-if-absent: durable when this returns.
    let written = engine.write("items", WriteRequest::new(ops)).await?;
    println!(
        "wrote 100 documents in one request: WAL object {}",
        written.lsn
    );
    // Fold them into a segment, then read back through ranged GETs.
    let fold = engine.flush("items").await?;
    println!(
        "folded {} records into a {}-byte segment",
        fold.records, fold.segment_bytes
    );
    let docs: Vec<Doc> = engine
        .scan_stream(
            "items",
            &ScanRange {
                prefix: Some("item-04".to_owned()),
                ..ScanRange::default()
            },
        )
        .await?
        .try_collect()
        .await?;
    let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    println!("prefix item-04: {ids:?}");
    engine.close().await?;
    if ids.len() != 10 {
        return Err(format!("expected 10 documents, got {}", ids.len()).into());
    }
    Ok(())
}
