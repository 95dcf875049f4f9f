//! `RetryingStore`: retries transient failures (`Error::is_transient`) of
//! every operation with jittered exponential backoff, a bounded number of
//! times.
//!
//! Safe for conditional puts too: a retry after a lost response finds its
//! own earlier write and answers `ConditionFailed`, and every caller of a
//! conditional put resolves that by reading the object back (the bytes say
//! whether it is ours). Non-transient errors and exhausted retries are
//! returned as they are.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{KeyPage, ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};
use crate::error::Result;

/// Wraps a store and retries its transient failures.
#[derive(Debug)]
pub struct RetryingStore<S> {
    inner: S,
    retries_max: u32,
    backoff_base: Duration,
}

impl<S: ObjectStore> RetryingStore<S> {
    /// Retries each operation up to `retries_max` times, waiting about
    /// `backoff_base * 2^attempt` (between half and all of it) in between.
    pub fn new(inner: S, retries_max: u32, backoff_base: Duration) -> Self {
        RetryingStore {
            inner,
            retries_max,
            backoff_base,
        }
    }

    fn delay(&self, attempt: u32, key: &str) -> Duration {
        let step = self.backoff_base.saturating_mul(1u32 << attempt.min(10));
        // Jitter from the key and attempt, so racing callers spread out
        // without a random number generator.
        let mix = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) ^ u64::from(attempt);
        let frac = (mix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as f64 / 2048.0;
        step / 2 + step.mul_f64(frac)
    }
}

macro_rules! retry {
    ($self:ident, $key:expr, $call:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $call.await {
                Err(e) if e.is_transient() && attempt < $self.retries_max => {
                    attempt += 1;
                    tracing::warn!(key = $key, attempt, error = %e, "transient storage error; retrying");
                    tokio::time::sleep($self.delay(attempt, $key)).await;
                }
                other => break other,
            }
        }
    }};
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for RetryingStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        retry!(self, key, self.inner.get(key))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        retry!(self, key, self.inner.get_range(key, range.clone()))
    }

    fn list_page_max(&self) -> usize {
        self.inner.list_page_max()
    }

    // The batch goes through in one go; a key whose read failed
    // transiently is retried on its own, as `get` would have been.
    async fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Object>>> {
        let mut answers = self.inner.get_many(keys).await;
        for (key, answer) in keys.iter().zip(answers.iter_mut()) {
            if matches!(answer, Err(e) if e.is_transient()) {
                *answer = self.get(key).await;
            }
        }
        answers
    }

    async fn get_many_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
        let inner = self.inner.get_many_within(keys, bytes_max).await;
        // In order, re-cutting as it goes: an error counted no bytes, the
        // object a retry finds does, and nothing past the cut is retried.
        let mut answers = super::Within::new(bytes_max);
        for (key, mut answer) in keys.iter().zip(inner) {
            if matches!(&answer, Err(e) if e.is_transient()) {
                answer = self.get(key).await;
            }
            if answers.push(answer) {
                break;
            }
        }
        answers.into_answers()
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        retry!(self, prefix, self.inner.list_dirs(prefix))
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        retry!(self, key, self.inner.get_range_sized(key, range.clone()))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        retry!(self, key, self.inner.head(key))
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        retry!(self, key, self.inner.put(key, bytes.clone()))
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        retry!(self, key, self.inner.put_if_absent(key, bytes.clone()))
    }

    // Retried whole: after a put that landed and a get that failed, the
    // retry's put reports `ConditionFailed`, as a retried put whose
    // response was lost does; callers read the object back either way.
    async fn put_if_absent_then_get(
        &self,
        key: &str,
        bytes: Bytes,
        then: &str,
    ) -> Result<(PutOutcome, Option<Object>)> {
        retry!(
            self,
            key,
            self.inner.put_if_absent_then_get(key, bytes.clone(), then)
        )
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        retry!(
            self,
            key,
            self.inner.put_if_match(key, bytes.clone(), expected)
        )
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        retry!(self, prefix, self.inner.list(prefix, start_after, limit))
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        retry!(
            self,
            prefix,
            self.inner.list_keys(prefix, start_after, limit)
        )
    }

    async fn any_under(&self, prefix: &str) -> Result<bool> {
        retry!(self, prefix, self.inner.any_under(prefix))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        retry!(self, key, self.inner.delete(key))
    }

    // One go; after a transient failure, key by key, each with its own
    // retries as `delete` would have had (deleting is idempotent: the keys
    // already gone succeed at once), so one flaky request in a batch of
    // thousands does not restart the batch on one shared budget.
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        match self.inner.delete_many(keys).await {
            Err(e) if e.is_transient() => {
                for key in keys {
                    self.delete(key).await?;
                }
                Ok(())
            }
            other => other,
        }
    }
}
