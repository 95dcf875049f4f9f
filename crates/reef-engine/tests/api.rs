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

/// `write_checked` takes a request checked once (issue #13: encode each
/// document once); one checked against other limits is checked again
/// against the engine's, so a looser check cannot smuggle in a document
/// the engine refuses.
#[tokio::test]
async fn a_checked_request_is_checked_again_under_other_limits() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let mut options = EngineOptions::default();
    options.limits.doc_bytes_max = 64;
    let engine = Engine::open(store, options).await.unwrap();
    let big = to_document(&User {
        name: "x".repeat(100),
        age: 1,
        tags: vec![],
    })
    .unwrap();
    let loose = WriteRequest::new([Op::upsert("u", big)])
        .check(&reef_format::Limits::default())
        .unwrap();
    let err = engine
        .write_checked("users", loose.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field.starts_with("ops[0].doc")),
        "{err}"
    );
    assert_eq!(
        engine.get("users", "u").await.unwrap(),
        None,
        "nothing written"
    );

    let small = to_document(&User {
        name: "ada".into(),
        age: 36,
        tags: vec![],
    })
    .unwrap();
    let ok = WriteRequest::new([Op::upsert("u", small.clone())])
        .check(engine.limits())
        .unwrap();
    engine.write_checked("users", ok).await.unwrap();
    let stored = engine.get("users", "u").await.unwrap().unwrap();
    assert_eq!(stored.doc, small, "the checked bytes are what is stored");
    engine.close().await.unwrap();
}
