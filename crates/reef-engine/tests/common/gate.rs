//! `GateStore`: a store wrapper that holds one chosen request until the
//! test releases it, to play a schedule exactly ("the compaction stops
//! right before its manifest commit while a writer and GC run").

use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use reef_manifest::Result;
use reef_manifest::store::{DynStore, ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};
use tokio::sync::oneshot;

type Armed = (String, oneshot::Sender<()>, oneshot::Receiver<()>);

/// Holds the first conditional put whose key contains the armed pattern.
#[derive(Debug)]
pub struct GateStore {
    inner: DynStore,
    armed: Mutex<Option<Armed>>,
}

/// The test's side of an armed gate.
pub struct Gate {
    /// Fires when the held request has arrived (and is waiting).
    pub reached: oneshot::Receiver<()>,
    /// Send (or drop) to let the held request through.
    pub release: oneshot::Sender<()>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl GateStore {
    pub fn new(inner: DynStore) -> GateStore {
        GateStore {
            inner,
            armed: Mutex::new(None),
        }
    }

    /// Holds the next `put_if_absent`/`put_if_match` of a key containing
    /// `pattern`.
    pub fn arm(&self, pattern: &str) -> Gate {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.armed.lock().unwrap() = Some((pattern.to_owned(), reached_tx, release_rx));
        Gate { reached, release }
    }

    async fn hold(&self, key: &str) {
        let taken = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_ref() {
                Some((p, _, _)) if key.contains(p.as_str()) => armed.take(),
                _ => None,
            }
        };
        if let Some((_, reached, release)) = taken {
            let _ = reached.send(());
            let _ = release.await;
        }
    }
}

#[async_trait]
impl ObjectStore for GateStore {
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
        self.hold(key).await;
        self.inner.put_if_absent(key, bytes).await
    }
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        self.hold(key).await;
        self.inner.put_if_match(key, bytes, expected).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.inner.list(prefix, start_after, limit).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}
