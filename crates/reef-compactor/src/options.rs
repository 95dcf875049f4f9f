//! Compactor options: segment shape, compaction trigger and target size,
//! and GC's grace period. Units last. No option here is a safety setting:
//! processes with different values (or clocks) stay correct together.

use std::sync::Arc;

use reef_format::SegmentOptions;
use reef_manifest::{Clock, Rng, Sabotage, SystemClock, SystemRng};

/// How fold, compaction and GC behave.
#[derive(Clone, Debug)]
pub struct CompactorOptions {
    /// Block size and bloom filter of new segments.
    pub segment: SegmentOptions,
    /// Most WAL records one fold takes (the rest wait for the next).
    pub fold_records_max: usize,
    /// Most bytes of WAL objects one fold takes, past the first record
    /// (the rest wait for the next fold), counted from the listing before
    /// any is read. A fold holds what it
    /// read and the level-0 segment it builds from it, so this bounds its
    /// memory: about twice this, whatever the unfolded WAL's size.
    pub fold_bytes_max: usize,
    /// Compact when this many level-0 segments exist.
    pub compaction_l0_trigger: usize,
    /// Level-1 segments are cut at about this size.
    pub l1_segment_bytes_target: usize,
    /// GC raises its floor only to versions superseded at least this long
    /// ago (by GC's clock), so unpinned readers that just loaded a version,
    /// and folds or compactions in flight, usually finish undisturbed. A
    /// short grace (or a wrong clock) costs them a retry, never data.
    pub gc_grace_ms: u64,
    /// Idempotency records older than this are not carried forward, for a
    /// namespace whose manifest does not record its own retention yet (the
    /// first fold stores this value in the manifest; later ones use that).
    pub idempotency_retention_ms: u64,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Where segment ids draw their random half.
    pub rng: Arc<dyn Rng>,
    /// Test-only: safety rules switched off (for the engine too), so the
    /// simulation can show it catches what each one prevents. Never set
    /// outside tests.
    #[doc(hidden)]
    pub sabotage: Sabotage,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        CompactorOptions {
            segment: SegmentOptions::default(),
            fold_records_max: 100_000,
            fold_bytes_max: 64 << 20,
            compaction_l0_trigger: 4,
            l1_segment_bytes_target: 64 << 20,
            gc_grace_ms: 10 * 60 * 1000,
            idempotency_retention_ms: 24 * 3600 * 1000,
            clock: Arc::new(SystemClock),
            rng: Arc::new(SystemRng::new()),
            sabotage: Sabotage::default(),
        }
    }
}
