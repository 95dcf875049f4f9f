//! Engine options: limits, memory budget, group-commit bounds, retries.
//! Every bound has a name with its unit last.

use std::sync::Arc;
use std::time::Duration;

use reef_format::Limits;
use reef_manifest::{Clock, SystemClock};

/// How an engine behaves.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Limits on user input (DESIGN §7).
    pub limits: Limits,
    /// Unfolded bytes (ids + documents in memtables) per namespace before
    /// writers wait.
    pub memtable_bytes_max: usize,
    /// How long a writer waits for room before failing with `Overloaded`.
    pub backpressure_wait_max: Duration,
    /// Most bytes of requests in one WAL object (one request always fits).
    pub group_bytes_max: usize,
    /// Most requests in one WAL object.
    pub group_requests_max: usize,
    /// Attempts at the next LSN before failing with `Contention`.
    pub lsn_race_retries_max: u32,
    /// Retries of a transient store error before giving up.
    pub transient_retries_max: u32,
    /// First backoff delay; doubles per retry, with jitter.
    pub backoff_base: Duration,
    /// Idempotency records are kept this long.
    pub idempotency_retention_ms: u64,
    /// Budget of the shared segment block cache.
    pub block_cache_bytes: usize,
    /// Open without the ability to write (another process writes).
    pub read_only: bool,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            limits: Limits::default(),
            memtable_bytes_max: 256 << 20,
            backpressure_wait_max: Duration::from_secs(30),
            group_bytes_max: 16 << 20,
            group_requests_max: 4096,
            lsn_race_retries_max: 64,
            transient_retries_max: 8,
            backoff_base: Duration::from_millis(5),
            idempotency_retention_ms: 24 * 3600 * 1000,
            block_cache_bytes: 64 << 20,
            read_only: false,
            clock: Arc::new(SystemClock),
        }
    }
}
