//! Embedding Reef: open an engine on a local directory, write a typed
//! document, read it back as its type, close (the README's library quick
//! start; CI runs it).
//!
//! ```text
//! cargo run -p reef-engine --example embed [DIR]
//! ```

use reef_engine::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Person {
    name: String,
    born: i32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./reef-data".to_owned());
    let engine = Engine::open(open_store(&dir)?, EngineOptions::default()).await?;
    let ada = Person {
        name: "ada".into(),
        born: 1815,
    };
    engine
        .write(
            "people",
            WriteRequest::new([Op::upsert("u1", to_document(&ada)?)]),
        )
        .await?;
    let (back, version) = engine
        .get_as::<Person>("people", "u1")
        .await?
        .ok_or("u1 is missing")?;
    println!("{back:?} at version {version}");
    engine.close().await?;
    Ok(())
}
