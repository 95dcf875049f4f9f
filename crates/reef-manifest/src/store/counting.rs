//! `CountingStore`: counts requests and bytes by operation kind, for the
//! "requests per acknowledged write" figures and for tests that assert how
//! many requests something costs.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{KeyPage, ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};
use crate::error::Result;

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Whole-object GETs.
    pub get: u64,
    /// Ranged GETs (`get_range` and `get_range_sized`).
    pub get_range: u64,
    /// HEADs.
    pub head: u64,
    /// Unconditional PUTs.
    pub put: u64,
    /// Put-if-absent PUTs.
    pub put_if_absent: u64,
    /// Put-if-match PUTs.
    pub put_if_match: u64,
    /// LIST pages.
    pub list: u64,
    /// DELETEs.
    pub delete: u64,
    /// Bytes returned by GETs.
    pub bytes_read: u64,
    /// Bytes sent by PUTs.
    pub bytes_written: u64,
}

impl StoreCounts {
    /// Every request, of any kind.
    pub fn requests(&self) -> u64 {
        self.get
            + self.get_range
            + self.head
            + self.put
            + self.put_if_absent
            + self.put_if_match
            + self.list
            + self.delete
    }

    /// Counters accumulated since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &StoreCounts) -> StoreCounts {
        StoreCounts {
            get: self.get - earlier.get,
            get_range: self.get_range - earlier.get_range,
            head: self.head - earlier.head,
            put: self.put - earlier.put,
            put_if_absent: self.put_if_absent - earlier.put_if_absent,
            put_if_match: self.put_if_match - earlier.put_if_match,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicU64,
    get_range: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    put_if_absent: AtomicU64,
    put_if_match: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Wraps a store and counts what passes through (attempts, including
/// failed ones).
#[derive(Debug, Clone)]
pub struct CountingStore<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S: ObjectStore> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            counters: Arc::default(),
        }
    }

    /// Counts the answers of a batch of gets as that many gets.
    fn count_gets(&self, answers: &[Result<Option<Object>>]) {
        bump(&self.counters.get, answers.len() as u64);
        let bytes = answers.iter().map(super::answer_bytes).sum();
        bump(&self.counters.bytes_read, bytes);
    }

    /// The counters now.
    pub fn counts(&self) -> StoreCounts {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreCounts {
            get: l(&c.get),
            get_range: l(&c.get_range),
            head: l(&c.head),
            put: l(&c.put),
            put_if_absent: l(&c.put_if_absent),
            put_if_match: l(&c.put_if_match),
            list: l(&c.list),
            delete: l(&c.delete),
            bytes_read: l(&c.bytes_read),
            bytes_written: l(&c.bytes_written),
        }
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for CountingStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        bump(&self.counters.get, 1);
        let out = self.inner.get(key).await?;
        if let Some(o) = &out {
            bump(&self.counters.bytes_read, o.bytes.len() as u64);
        }
        Ok(out)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        bump(&self.counters.get_range, 1);
        let out = self.inner.get_range(key, range).await?;
        bump(&self.counters.bytes_read, out.len() as u64);
        Ok(out)
    }

    fn list_page_max(&self) -> usize {
        self.inner.list_page_max()
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        bump(&self.counters.list, 1);
        self.inner.list_dirs(prefix).await
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        bump(&self.counters.get_range, 1);
        let out = self.inner.get_range_sized(key, range).await?;
        bump(&self.counters.bytes_read, out.0.len() as u64);
        Ok(out)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        bump(&self.counters.head, 1);
        self.inner.head(key).await
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        bump(&self.counters.put, 1);
        bump(&self.counters.bytes_written, bytes.len() as u64);
        self.inner.put(key, bytes).await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        bump(&self.counters.put_if_absent, 1);
        bump(&self.counters.bytes_written, bytes.len() as u64);
        self.inner.put_if_absent(key, bytes).await
    }

    /// Counted as the two requests it stands for.
    async fn put_if_absent_then_get(
        &self,
        key: &str,
        bytes: Bytes,
        then: &str,
    ) -> Result<(PutOutcome, Option<Object>)> {
        bump(&self.counters.put_if_absent, 1);
        bump(&self.counters.bytes_written, bytes.len() as u64);
        let (outcome, got) = self.inner.put_if_absent_then_get(key, bytes, then).await?;
        bump(&self.counters.get, 1);
        if let Some(o) = &got {
            bump(&self.counters.bytes_read, o.bytes.len() as u64);
        }
        Ok((outcome, got))
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        bump(&self.counters.put_if_match, 1);
        bump(&self.counters.bytes_written, bytes.len() as u64);
        self.inner.put_if_match(key, bytes, expected).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        bump(&self.counters.list, 1);
        self.inner.list(prefix, start_after, limit).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        bump(&self.counters.list, 1);
        self.inner.list_keys(prefix, start_after, limit).await
    }

    // Forwarded, so a counted local store still reads a batch in blocking
    // runs (recovery by `reef flush`, `compact` and `gc` goes through here);
    // counted as the gets one by one would have been.
    async fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Object>>> {
        let answers = self.inner.get_many(keys).await;
        self.count_gets(&answers);
        answers
    }

    async fn get_many_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
        let answers = self.inner.get_many_within(keys, bytes_max).await;
        self.count_gets(&answers);
        answers
    }

    async fn any_under(&self, prefix: &str) -> Result<bool> {
        bump(&self.counters.list, 1);
        self.inner.any_under(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        bump(&self.counters.delete, 1);
        self.inner.delete(key).await
    }

    // Counted per key, as the deletes one by one would have been (a batch
    // that fails part way counts all its keys).
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        bump(&self.counters.delete, keys.len() as u64);
        self.inner.delete_many(keys).await
    }
}
