//! What GC costs per WAL object on a local directory, with inode reuse on
//! or off (docs/benchmarks.md, "GC keeps the spares' blocks").
//!
//! ```text
//! cargo run --release -p reef-manifest --example wal_gc -- DIR [on|off]
//! ```
//!
//! Four rounds, each: 4,000 WAL puts of 10,000 bytes one at a time (as a
//! writer under load makes them), then one `delete_many` of all of them
//! (as GC after a compaction does). Prints each phase's time per object.
//! DIR should be a fresh directory on the disk to measure.
#![allow(clippy::disallowed_methods, reason = "an example measures real time")]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use reef_manifest::store::{DynStore, LocalStore};

const OBJECTS: u32 = 4_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: wal_gc DIR [on|off]")?;
    let recycling = args.next().as_deref() != Some("off");
    let store: DynStore = Arc::new(LocalStore::new(dir).with_recycling(recycling));
    let payload = Bytes::from(vec![7u8; 10_000]);
    let mut lsn = 0u64;
    for round in 0..4 {
        let keys: Vec<String> = (0..OBJECTS)
            .map(|_| {
                lsn += 1;
                format!("ns/gc/wal/{lsn:020}.wal")
            })
            .collect();
        let t = Instant::now();
        for key in &keys {
            store.put_if_absent(key, payload.clone()).await?;
        }
        let puts = t.elapsed() / OBJECTS;
        let t = Instant::now();
        store.delete_many(&keys).await?;
        let gc = t.elapsed() / OBJECTS;
        println!("round {round}: put {puts:?} per object, delete_many {gc:?} per object");
    }
    Ok(())
}
