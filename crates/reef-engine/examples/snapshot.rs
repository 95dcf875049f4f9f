//! A snapshot read: a consistent view of a namespace, pinned by a lease so
//! maintenance cannot collect what it reads, while writes go on. The
//! snapshot's scan is a stream read in bounded memory. CI runs it.
//!
//! ```text
//! cargo run -p reef-engine --example snapshot [DIR]
//! ```

use futures_util::TryStreamExt;
use reef_engine::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Account {
    balance: i64,
}

async fn put(engine: &Engine, balances: &[(&str, i64)]) -> Result<(), Box<dyn std::error::Error>> {
    let mut ops = Vec::new();
    for (id, balance) in balances {
        ops.push(Op::upsert(
            *id,
            to_document(&Account { balance: *balance })?,
        ));
    }
    // One request: all accounts change atomically.
    engine.write("bank", WriteRequest::new(ops)).await?;
    Ok(())
}

async fn total(docs: DocStream) -> Result<i64, Box<dyn std::error::Error>> {
    let docs: Vec<Doc> = docs.try_collect().await?;
    let mut sum = 0;
    for doc in docs {
        sum += from_document::<Account>(&doc.doc)?.balance;
    }
    Ok(sum)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./reef-data".to_owned());
    let engine = Engine::open(open_store(&dir)?, EngineOptions::default()).await?;
    put(&engine, &[("alice", 100), ("bob", 50)]).await?;

    let snapshot = engine.snapshot("bank").await?;
    // A transfer, and a fold of it into a segment, after the snapshot.
    put(&engine, &[("alice", 70), ("bob", 80)]).await?;
    engine.flush("bank").await?;

    let then = snapshot.get("alice").await?.ok_or("alice is missing")?;
    let now = engine
        .get("bank", "alice")
        .await?
        .ok_or("alice is missing")?;
    println!(
        "alice: {:?} in the snapshot (version {}), {:?} now (version {})",
        from_document::<Account>(&then.doc)?,
        then.version,
        from_document::<Account>(&now.doc)?,
        now.version
    );
    let at_snapshot = total(snapshot.scan_stream(&ScanRange::default())).await?;
    let latest = total(engine.scan_stream("bank", &ScanRange::default()).await?).await?;
    println!("total balance: {at_snapshot} in the snapshot, {latest} now");
    if then.version >= now.version || at_snapshot != 150 {
        return Err("the snapshot did not keep its version".into());
    }
    drop(snapshot); // releases its lease
    engine.close().await?;
    Ok(())
}
