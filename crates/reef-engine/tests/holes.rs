//! A listing is not a snapshot (issue #14): objects created while a
//! directory or bucket is being listed can appear while older ones do not.
//! A gap in a WAL listing must be checked by reading the key itself before
//! it is called a hole; a true hole is still an error naming the object.

mod common;

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use reef_engine::{Engine, EngineOptions};
use reef_manifest::Result;
use reef_manifest::store::{
    DynStore, ListPage, MemoryStore, Object, ObjectMeta, ObjectStore, PutOutcome, Tag,
};

/// Leaves one key out of every listing, as a listing racing that key's
/// creation may.
#[derive(Debug)]
struct GappyList {
    inner: DynStore,
    hidden: String,
}

#[async_trait]
impl ObjectStore for GappyList {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        self.inner.put_if_absent(key, bytes).await
    }
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        self.inner.put_if_match(key, bytes, expected).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let mut page = self.inner.list(prefix, start_after, limit).await?;
        page.objects.retain(|o| o.key != self.hidden);
        Ok(page)
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

fn options() -> EngineOptions {
    EngineOptions {
        background: false,
        ..EngineOptions::default()
    }
}

async fn three_writes(store: &DynStore) {
    let e = Engine::open(Arc::clone(store), options()).await.unwrap();
    for id in ["a", "b", "c"] {
        e.write(
            "h",
            common::request(vec![common::upsert(id, common::doc(&[("v", 1)]))]),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_gap_in_a_listing_is_read_directly_not_called_a_hole() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    three_writes(&mem).await;
    let gappy: DynStore = Arc::new(GappyList {
        inner: Arc::clone(&mem),
        hidden: "ns/h/wal/00000000000000000002.wal".to_owned(),
    });
    // Recovery and a fold both read the WAL through the gappy listing.
    let e = Engine::open(Arc::clone(&gappy), options()).await.unwrap();
    for id in ["a", "b", "c"] {
        assert!(e.get("h", id).await.unwrap().is_some(), "{id}");
    }
    let folded = e.flush("h").await.unwrap();
    assert_eq!(folded.records, 3, "{folded:?}");
}

#[tokio::test]
async fn a_true_hole_is_an_error_naming_the_object() {
    let mem: DynStore = Arc::new(MemoryStore::new());
    three_writes(&mem).await;
    mem.delete("ns/h/wal/00000000000000000002.wal").await.unwrap();
    let e = Engine::open(Arc::clone(&mem), options()).await.unwrap();
    let err = e.get("h", "a").await.unwrap_err().to_string();
    assert!(
        err.contains("WAL hole") && err.contains("ns/h/wal/00000000000000000002.wal"),
        "{err}"
    );
}
