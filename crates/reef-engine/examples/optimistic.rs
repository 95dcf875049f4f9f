//! An optimistic update loop: read a document with its version, compute
//! the change, write it back only if the version is unchanged
//! (`if_version`), and on a conflict read again. Eight tasks increment one
//! counter concurrently; no increment is lost. CI runs it.
//!
//! ```text
//! cargo run -p reef-engine --example optimistic [DIR]
//! ```

use std::sync::Arc;

use reef_engine::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Counter {
    count: u64,
}

const TASKS: u64 = 8;
const INCREMENTS: u64 = 25;

/// Adds one to `counters/hits`; returns how many conflicts it retried.
async fn increment(engine: &Engine) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let mut conflicts = 0;
    loop {
        let (op, counter) = match engine.get_as::<Counter>("counters", "hits").await? {
            // Someone else may create it first: create only if absent.
            None => (
                Op::upsert("hits", Document::new()).if_absent(),
                Counter::default(),
            ),
            Some((counter, version)) => (
                Op::upsert("hits", Document::new()).if_version(version),
                counter,
            ),
        };
        let next = Counter {
            count: counter.count + 1,
        };
        let op = Op {
            doc: Some(to_document(&next)?),
            ..op
        };
        match engine.write("counters", WriteRequest::new([op])).await {
            Ok(_) => return Ok(conflicts),
            // The document changed between our read and our write: nothing
            // was applied; read again and redo the change.
            Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./reef-data".to_owned());
    let engine = Arc::new(Engine::open(open_store(&dir)?, EngineOptions::default()).await?);
    let start = engine
        .get_as::<Counter>("counters", "hits")
        .await?
        .map_or(0, |(c, _)| c.count);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let engine = Arc::clone(&engine);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..INCREMENTS {
                conflicts += increment(&engine).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(conflicts)
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await??;
    }
    let (counter, version) = engine
        .get_as::<Counter>("counters", "hits")
        .await?
        .ok_or("the counter is missing")?;
    println!(
        "count {} (from {start}) at version {version}; {conflicts} conflicts retried",
        counter.count
    );
    if counter.count != start + TASKS * INCREMENTS {
        return Err(format!(
            "lost increments: {} != {}",
            counter.count,
            start + TASKS * INCREMENTS
        )
        .into());
    }
    engine.close().await?;
    Ok(())
}
