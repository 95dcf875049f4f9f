//! `GateStore`: a store wrapper that holds one chosen request until the
//! test releases it, to play a schedule exactly ("the compaction stops
//! right before its manifest commit while a writer and GC run"). A gate
//! can also let a put take effect and then lose its response (a transient
//! error after the write landed).

use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use reef_manifest::Result;
use reef_manifest::store::{DynStore, ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};
use tokio::sync::oneshot;

/// Which request a gate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// A `put_if_absent` or `put_if_match`, held before it is sent.
    ConditionalPut,
    /// A `put_if_absent` that takes effect, is held, then answers with a
    /// transient error (its response "lost").
    PutThenLoseResponse,
    /// A `get`, held before it is sent.
    Get,
    /// A `get` that, once released, fails with a non-transient error
    /// (retries exhausted, say) instead of being sent.
    FailGet,
    /// A `list`, held before it is sent (pattern matched on the prefix).
    List,
}

type Armed = (On, String, oneshot::Sender<()>, oneshot::Receiver<()>);

/// Holds the first request of the armed kind whose key contains the
/// armed pattern.
#[derive(Debug)]
pub struct GateStore {
    inner: DynStore,
    armed: Mutex<Option<Armed>>,
    /// A key every listing leaves out (as a listing racing its creation
    /// may), though the object exists.
    hidden: Mutex<Option<String>>,
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
            hidden: Mutex::new(None),
        }
    }

    /// Leaves `key` out of every later listing.
    pub fn hide_from_listings(&self, key: &str) {
        *self.hidden.lock().unwrap() = Some(key.to_owned());
    }

    /// Holds the next conditional put of a key containing `pattern`.
    pub fn arm(&self, pattern: &str) -> Gate {
        self.arm_on(On::ConditionalPut, pattern)
    }

    /// Holds the next request of kind `on` whose key contains `pattern`.
    pub fn arm_on(&self, on: On, pattern: &str) -> Gate {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        *self.armed.lock().unwrap() = Some((on, pattern.to_owned(), reached_tx, release_rx));
        Gate { reached, release }
    }

    /// Holds this request if it is the armed one; returns whether it was.
    async fn hold(&self, on: On, key: &str) -> bool {
        let taken = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_ref() {
                Some((o, p, _, _)) if *o == on && key.contains(p.as_str()) => armed.take(),
                _ => None,
            }
        };
        match taken {
            Some((_, _, reached, release)) => {
                let _ = reached.send(());
                let _ = release.await;
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl ObjectStore for GateStore {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        self.hold(On::Get, key).await;
        if self.hold(On::FailGet, key).await {
            return Err(reef_manifest::Error::Injected {
                op: "get",
                key: key.to_owned(),
                fault: "failed after retries",
                transient: false,
            });
        }
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        self.inner.get_range_sized(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        self.hold(On::ConditionalPut, key).await;
        let outcome = self.inner.put_if_absent(key, bytes).await;
        if self.hold(On::PutThenLoseResponse, key).await {
            return Err(reef_manifest::Error::Injected {
                op: "put_if_absent",
                key: key.to_owned(),
                fault: "response lost after the write landed",
                transient: true,
            });
        }
        outcome
    }
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        self.hold(On::ConditionalPut, key).await;
        self.inner.put_if_match(key, bytes, expected).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.hold(On::List, prefix).await;
        let mut page = self.inner.list(prefix, start_after, limit).await?;
        if let Some(hidden) = self.hidden.lock().unwrap().as_deref() {
            page.objects.retain(|o| o.key != hidden);
        }
        Ok(page)
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}
