//! Embedding Reef: open an engine on a local directory, write one
//! document, read it back, close (the README's library quick start).
//!
//! ```text
//! cargo run -p reef-engine --example embed [DIR]
//! ```

use std::sync::Arc;

use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};

#[tokio::main]
async fn main() -> Result<(), reef_engine::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./reef-data".to_owned());
    let store: DynStore = Arc::new(LocalStore::new(dir));
    let engine = Engine::open(store, EngineOptions::default()).await?;
    let doc = Document::from_iter([("name".to_owned(), Value::String("ada".into()))]);
    let op = Op {
        kind: OpKind::Upsert,
        id: "u1".into(),
        doc: Some(doc),
        precondition: None,
    };
    engine
        .write(
            "people",
            WriteRequest {
                ops: vec![op],
                idempotency_key: None,
            },
        )
        .await?;
    println!("{:?}", engine.get("people", "u1").await?);
    engine.close().await
}
