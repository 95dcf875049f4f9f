//! Engine options: limits, memory budget, group-commit bounds, retries.
//! Every bound has a name with its unit last.

use std::sync::Arc;
use std::time::Duration;

use reef_compactor::CompactorOptions;
use reef_format::Limits;
use reef_manifest::{Clock, Rng, SystemClock, SystemRng};

/// How an engine behaves.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Limits on user input (DESIGN §7).
    pub limits: Limits,
    /// Memory a namespace's unfolded entries may hold (ids, documents and
    /// the memtable's index around them) before writers wait.
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
    /// Budget of the shared segment block cache, in bytes of memory its
    /// decoded blocks hold (`Block::mem_bytes`).
    pub block_cache_bytes: usize,
    /// Open without the ability to write (another process writes).
    pub read_only: bool,
    /// Fold, compaction and GC settings, and the idempotency retention
    /// for namespaces whose manifest does not record one yet.
    pub compactor: CompactorOptions,
    /// Fold in the background when the memtable holds this many bytes
    /// (counted as for `memtable_bytes_max`).
    pub fold_trigger_bytes: usize,
    /// Fold in the background when this many WAL objects are unfolded.
    pub fold_trigger_wal_objects: u64,
    /// Fold in the background when unfolded data is this old (checked
    /// every quarter of it, so idle namespaces get folded too).
    pub fold_trigger_age: std::time::Duration,
    /// Snapshots pin their manifest with a lease of this length, renewed
    /// at a third of it while the snapshot lives.
    pub snapshot_lease_ttl_ms: u64,
    /// Run fold, compaction and GC in the background (off: only on
    /// `flush`/`compact`/`gc` calls, e.g. when a separate compactor runs).
    pub background: bool,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Where WAL record ids and lease ids are drawn from.
    pub rng: Arc<dyn Rng>,
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
            block_cache_bytes: 64 << 20,
            read_only: false,
            compactor: CompactorOptions::default(),
            fold_trigger_bytes: 64 << 20,
            fold_trigger_wal_objects: 1000,
            fold_trigger_age: std::time::Duration::from_secs(60),
            background: true,
            snapshot_lease_ttl_ms: 60_000,
            clock: Arc::new(SystemClock),
            rng: Arc::new(SystemRng::new()),
        }
    }
}
