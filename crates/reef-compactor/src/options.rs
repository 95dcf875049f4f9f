//! Compactor options: segment shape, compaction trigger and target size,
//! and the ages GC respects. Units last.

use std::sync::Arc;

use reef_format::SegmentOptions;
use reef_manifest::{Clock, SystemClock};

/// How fold, compaction and GC behave.
#[derive(Clone, Debug)]
pub struct CompactorOptions {
    /// Block size and bloom filter of new segments.
    pub segment: SegmentOptions,
    /// Most WAL records one fold takes (the rest wait for the next).
    pub fold_records_max: usize,
    /// Compact when this many level-0 segments exist.
    pub compaction_l0_trigger: usize,
    /// Level-1 segments are cut at about this size.
    pub l1_segment_bytes_target: usize,
    /// A folded WAL object is deleted only once a manifest folding it is
    /// at least this old. Writers re-read the manifest when their copy is
    /// older than half of it (the stale-writer fence, DESIGN §3.2).
    pub wal_min_age_ms: u64,
    /// Superseded manifests and unreferenced segments are deleted only
    /// after this long, so readers that just loaded them, and folds in
    /// flight, keep what they read.
    pub gc_grace_ms: u64,
    /// Idempotency records older than this are not carried forward.
    pub idempotency_retention_ms: u64,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        CompactorOptions {
            segment: SegmentOptions::default(),
            fold_records_max: 100_000,
            compaction_l0_trigger: 4,
            l1_segment_bytes_target: 64 << 20,
            wal_min_age_ms: 10 * 60 * 1000,
            gc_grace_ms: 10 * 60 * 1000,
            idempotency_retention_ms: 24 * 3600 * 1000,
            clock: Arc::new(SystemClock),
        }
    }
}
