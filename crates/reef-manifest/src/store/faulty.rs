//! `FaultyStore`: injects failures on a seeded, replayable schedule — the
//! base of the crash simulations.
//!
//! Operations are numbered from 0 in the order they start. A plan can:
//! - crash *before* operation `n`: it and every later operation fail
//!   without touching the bucket (the process died before sending it);
//! - crash *after* operation `n`: it takes effect, then it and every later
//!   operation fail (the process died before seeing the answer);
//! - fail operations transiently with probability `transient_rate`
//!   (nothing happens), or lose the response with probability
//!   `lost_response_rate` (it happens, the caller sees a transient error);
//! - delay operations by up to `delay_ms_max`.
//!
//! The same seed and the same sequence of calls give the same faults.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};
use crate::error::{Error, Result};

/// What to inject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Crash before this operation number.
    pub crash_before_op: Option<u64>,
    /// Crash after this operation number.
    pub crash_after_op: Option<u64>,
    /// Probability (0..=1) that an operation fails transiently, untried.
    pub transient_rate: f64,
    /// Probability (0..=1) that an operation's response is lost after it
    /// took effect.
    pub lost_response_rate: f64,
    /// Upper bound of a random delay before each operation.
    pub delay_ms_max: u64,
}

/// Wraps a store and injects faults per a `FaultPlan`.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    plan: FaultPlan,
    next_op: AtomicU64,
    crashed: AtomicBool,
}

/// SplitMix64: tiny, fast, and good enough to pick faults.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

enum Before {
    Proceed { op: u64, lose_response: bool },
}

impl<S: ObjectStore> FaultyStore<S> {
    /// Wraps `inner` with `plan`.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        FaultyStore {
            inner,
            plan,
            next_op: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
        }
    }

    /// Whether the simulated crash has happened.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Operations started so far.
    pub fn ops_started(&self) -> u64 {
        self.next_op.load(Ordering::SeqCst)
    }

    /// The wrapped store (what survives the crash).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// A uniform draw in [0, 1) for operation `op`, draw `k`: a pure
    /// function of (seed, op, k), so concurrent callers replay exactly.
    fn unit(&self, op: u64, k: u64) -> f64 {
        let mut state = self.plan.seed
            ^ op.wrapping_mul(0xA076_1D64_78BD_642F)
            ^ k.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        (next_random(&mut state) >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn before(&self, op_name: &'static str, key: &str) -> Result<Before> {
        let op = self.next_op.fetch_add(1, Ordering::SeqCst);
        let fail = |fault: &'static str, transient: bool| Error::Injected {
            op: op_name,
            key: key.to_owned(),
            fault,
            transient,
        };
        if self.plan.delay_ms_max > 0 {
            let ms = (self.unit(op, 0) * (self.plan.delay_ms_max + 1) as f64) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.crashed() || self.plan.crash_before_op.is_some_and(|n| op >= n) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(fail("crashed before this operation", false));
        }
        if self.plan.transient_rate > 0.0 && self.unit(op, 1) < self.plan.transient_rate {
            return Err(fail("transient error, nothing done", true));
        }
        let lose_response =
            self.plan.lost_response_rate > 0.0 && self.unit(op, 2) < self.plan.lost_response_rate;
        Ok(Before::Proceed { op, lose_response })
    }

    fn after<T>(&self, op_name: &'static str, key: &str, b: Before, out: Result<T>) -> Result<T> {
        let Before::Proceed { op, lose_response } = b;
        let fail = |fault: &'static str, transient: bool| Error::Injected {
            op: op_name,
            key: key.to_owned(),
            fault,
            transient,
        };
        if self.plan.crash_after_op == Some(op) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(fail("crashed after this operation took effect", false));
        }
        // Operations in flight when the process died never report back.
        if self.crashed() {
            return Err(fail("crashed while this operation was in flight", false));
        }
        if lose_response && out.is_ok() {
            return Err(fail("response lost after the operation took effect", true));
        }
        out
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let b = self.before("get", key).await?;
        let out = self.inner.get(key).await;
        self.after("get", key, b, out)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let b = self.before("get_range", key).await?;
        let out = self.inner.get_range(key, range).await;
        self.after("get_range", key, b, out)
    }

    fn list_page_max(&self) -> usize {
        self.inner.list_page_max()
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let b = self.before("list", prefix).await?;
        let out = self.inner.list_dirs(prefix).await;
        self.after("list", prefix, b, out)
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let b = self.before("get_range", key).await?;
        let out = self.inner.get_range_sized(key, range).await;
        self.after("get_range", key, b, out)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let b = self.before("head", key).await?;
        let out = self.inner.head(key).await;
        self.after("head", key, b, out)
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let b = self.before("put", key).await?;
        let out = self.inner.put(key, bytes).await;
        self.after("put", key, b, out)
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let b = self.before("put_if_absent", key).await?;
        let out = self.inner.put_if_absent(key, bytes).await;
        self.after("put_if_absent", key, b, out)
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        let b = self.before("put_if_match", key).await?;
        let out = self.inner.put_if_match(key, bytes, expected).await;
        self.after("put_if_match", key, b, out)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let b = self.before("list", prefix).await?;
        let out = self.inner.list(prefix, start_after, limit).await;
        self.after("list", prefix, b, out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let b = self.before("delete", key).await?;
        let out = self.inner.delete(key).await;
        self.after("delete", key, b, out)
    }
}
