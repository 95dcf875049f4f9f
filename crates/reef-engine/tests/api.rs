//! The library surface a user embeds (issue #12): op builders, documents
//! from and to any serde type (`to_document`, `get_as`), and `close(&self)`
//! on an engine shared in an `Arc`.

use std::sync::Arc;

use reef_engine::{Engine, EngineOptions, Error};
use reef_format::{Op, WriteRequest, to_document};
use reef_manifest::store::{DynStore, MemoryStore};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct User {
    name: String,
    age: u32,
    tags: Vec<String>,
}

#[tokio::test]
async fn typed_documents_builders_and_a_shared_close() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let engine = Arc::new(Engine::open(store, EngineOptions::default()).await.unwrap());
    let ada = User {
        name: "ada".into(),
        age: 36,
        tags: vec!["math".into()],
    };
    let written = engine
        .write(
            "users",
            WriteRequest::new([Op::upsert("u1", to_document(&ada).unwrap()).if_absent()])
                .idempotency_key("create-u1"),
        )
        .await
        .unwrap();
    let (back, version) = engine.get_as::<User>("users", "u1").await.unwrap().unwrap();
    assert_eq!((back, Some(version)), (ada.clone(), written.last_version));

    // An optimistic update: only at the version read.
    let older = User { age: 37, ..ada };
    engine
        .write(
            "users",
            WriteRequest::new([Op::upsert("u1", to_document(&older).unwrap()).if_version(version)]),
        )
        .await
        .unwrap();
    let stale = engine
        .write(
            "users",
            WriteRequest::new([Op::delete("u1").if_version(version)]),
        )
        .await;
    assert!(
        matches!(stale, Err(Error::PreconditionFailed { .. })),
        "{stale:?}"
    );

    // A document that does not fit the type is Invalid, not a panic.
    let wrong = engine.get_as::<Vec<u8>>("users", "u1").await;
    assert!(matches!(wrong, Err(Error::Invalid { .. })), "{wrong:?}");

    // Closed through a shared reference; later calls are refused.
    let shared = Arc::clone(&engine);
    shared.close().await.unwrap();
    let after = engine.get("users", "u1").await;
    assert!(matches!(after, Err(Error::Closed { .. })), "{after:?}");
    engine.close().await.unwrap();
}
