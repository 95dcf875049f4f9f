//! In-process scheduling of fold, compaction and GC for one namespace.
//!
//! After each commit the leader checks the fold triggers (unfolded bytes,
//! unfolded WAL objects); if one fires and no fold is running, a task
//! folds, adopts the new manifest (under the commit lock: adopting swaps
//! the memtable, which must not race an apply), compacts when level 0 is
//! full, and runs GC after a compaction. A failure is kept for `stats` and
//! does not stop writes; they continue until the memory budget is hit.

use std::sync::Arc;

use reef_compactor::{CompactReport, FoldReport, GcReport};

use crate::error::{Error, Result};
use crate::namespace::Namespace;
use crate::options::EngineOptions;
use crate::sync::read_lock;

/// Starts a background fold if a trigger fires and none is running.
pub(crate) fn maybe_schedule(ns: &Arc<Namespace>, opts: &Arc<EngineOptions>) {
    if !opts.background || !due(ns, opts) || !ns.scheduler.try_start() {
        return;
    }
    let claim = Claim {
        ns: Arc::clone(ns),
        held: true,
    };
    let opts = Arc::clone(opts);
    tokio::spawn(async move {
        let ns = &claim.ns;
        loop {
            // After `close` the cycle ends at its next step; what is left
            // stays in the WAL, durable, for the next process.
            while !ns.scheduler.closed() && due(ns, &opts) {
                match cycle(ns, &opts).await {
                    // A warning (HEAD not moved) or none: kept for `stats`.
                    Ok(warning) => ns.lock_state().background_error = warning,
                    Err(e) => {
                        tracing::warn!(namespace = %ns.name, error = %e, "background maintenance failed");
                        ns.lock_state().background_error = Some(e.to_string());
                        // The next trigger retries; no hot loop on a
                        // failure. (Dropping the claim gives it up.)
                        return;
                    }
                }
            }
            // A trigger between our last look and the release saw the
            // claim taken: look once more (loom-checked in `schedule.rs`).
            if !ns.scheduler.stop(|| due(ns, &opts)) {
                break;
            }
        }
        claim.released();
    });
}

/// The claim on the background cycle, held by the running task. Dropped
/// while still held (the cycle failed, panicked, or its runtime shut
/// down), it gives the claim up; either way it wakes `close`, which would
/// otherwise wait for a cycle that no longer runs.
struct Claim {
    ns: Arc<Namespace>,
    held: bool,
}

impl Claim {
    /// The cycle stopped, its claim already given up by `stop`.
    fn released(mut self) {
        self.held = false;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.held {
            self.ns.scheduler.abandon();
        }
        self.ns.idle.notify_waiters();
    }
}

fn due(ns: &Namespace, opts: &EngineOptions) -> bool {
    let s = ns.lock_state();
    let bytes = read_lock(&s.memtable).bytes();
    let wal = s.last_lsn.saturating_sub(s.manifest.last_applied_lsn);
    let old = s
        .unfolded_since
        .is_some_and(|t| t.elapsed() >= opts.fold_trigger_age);
    wal > 0 && (bytes >= opts.fold_trigger_bytes || wal >= opts.fold_trigger_wal_objects || old)
}

/// Checks the triggers every quarter of the age trigger, so an idle
/// namespace's unfolded data is folded too. Ends with the namespace or its
/// engine's `close`.
pub(crate) fn start_ticker(ns: &Arc<Namespace>, opts: &Arc<EngineOptions>) {
    if !opts.background || opts.read_only {
        return;
    }
    let (weak, opts) = (Arc::downgrade(ns), Arc::clone(opts));
    tokio::spawn(async move {
        let period = (opts.fold_trigger_age / 4).max(std::time::Duration::from_millis(10));
        loop {
            tokio::time::sleep(period).await;
            let Some(ns) = weak.upgrade() else { return };
            if ns.scheduler.closed() {
                return;
            }
            maybe_schedule(&ns, &opts);
        }
    });
}

/// Whether a background fold cycle is running.
pub(crate) fn folding(ns: &Namespace) -> bool {
    ns.scheduler.running()
}

/// One maintenance cycle; `Ok(Some(why))` when it went through but HEAD
/// could not be moved (that costs readers probes, not data: the cycle goes
/// on, and `stats` says why).
async fn cycle(ns: &Namespace, opts: &EngineOptions) -> Result<Option<String>> {
    let mut warning = None;
    // One fold per cycle: the cycle's loop runs the next while a trigger
    // still fires, so `close` and level 0's trigger are looked at between
    // folds, however much WAL waits.
    let target = ns.lock_state().last_lsn;
    let folded = fold_once(ns, opts, target).await?;
    if folded.manifest_version.is_some() {
        let compacted = compact(ns, opts, false).await?;
        if let Some(why) = folded.head_error.as_ref().or(compacted.head_error.as_ref()) {
            warning = Some(format!("HEAD not moved: {why}"));
        }
        if compacted.manifest_version.is_some() {
            gc(ns, opts).await?;
        }
    }
    Ok(warning)
}

/// Adopts the newest manifest (and WAL) under the commit lock.
pub(crate) async fn adopt(ns: &Namespace) -> Result<()> {
    let _mutator = ns.commit.lock().await;
    ns.catch_up().await
}

/// Most attempts one flush (or forced compaction) makes: each lost race
/// means another committer made progress.
const FLUSH_ATTEMPTS_MAX: u32 = 8;

/// One fold of what this engine has applied up to `target` (at most
/// `fold_bytes_max` of it), then adopts the newest manifest, whoever
/// committed it: after a fold that lost to another, the triggers and the
/// next fold see the winner's.
async fn fold_once(ns: &Namespace, opts: &EngineOptions, target: u64) -> Result<FoldReport> {
    let report = reef_compactor::fold(&ns.store, &ns.layout, &opts.compactor, Some(target)).await?;
    adopt(ns).await?;
    Ok(report)
}

/// Folds everything this engine has applied, then adopts the result: one
/// fold after another while each takes the next `fold_bytes_max` of WAL,
/// and again after one that loses to a concurrent fold (a background fold
/// that started earlier and stopped short), until the target is folded.
/// `FLUSH_ATTEMPTS_MAX` folds in a row that move nothing end it with
/// `FlushStalled`: a flush that returns `Ok` has folded every write this
/// engine acknowledged before it began. The report adds up the folds this
/// flush committed; its segment and manifest are the last of them.
pub(crate) async fn flush(ns: &Namespace, opts: &EngineOptions) -> Result<FoldReport> {
    // Only what this engine has confirmed (applied): its own WAL record
    // in flight is never folded before its writer runs the fence.
    let target = ns.lock_state().last_lsn;
    let mut total = FoldReport::default();
    let mut stalled = 0;
    loop {
        let before = ns.lock_state().manifest.last_applied_lsn;
        if before >= target {
            return Ok(total);
        }
        if stalled == FLUSH_ATTEMPTS_MAX {
            return Err(Error::FlushStalled {
                namespace: ns.name.clone(),
                folded: before,
                target,
                attempts: stalled,
            });
        }
        let report = fold_once(ns, opts, target).await?;
        if report.manifest_version.is_some() {
            total = FoldReport {
                records: total.records + report.records,
                entries_in: total.entries_in + report.entries_in,
                entries_out: total.entries_out + report.entries_out,
                segment_bytes: total.segment_bytes + report.segment_bytes,
                segment: report.segment,
                manifest_version: report.manifest_version,
                abandoned: None,
                head_error: report.head_error.or(total.head_error),
            };
        }
        if ns.lock_state().manifest.last_applied_lsn > before {
            stalled = 0;
        } else {
            stalled += 1;
        }
    }
}

/// Compacts (if level 0 is full, or `force`), then adopts the result. A
/// forced compaction that loses its commit to another one (this engine's
/// background cycle, or another process, took some of its inputs) runs
/// again on the new manifest, so level 0 is empty when it returns; an
/// unforced one leaves that to the next trigger.
pub(crate) async fn compact(
    ns: &Namespace,
    opts: &EngineOptions,
    force: bool,
) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    for _ in 0..FLUSH_ATTEMPTS_MAX {
        report = reef_compactor::compact(&ns.store, &ns.layout, &opts.compactor, force).await?;
        adopt(ns).await?;
        if !force || report.abandoned.is_none() {
            break;
        }
    }
    Ok(report)
}

/// One GC pass.
pub(crate) async fn gc(ns: &Namespace, opts: &EngineOptions) -> Result<GcReport> {
    Ok(reef_compactor::gc(&ns.store, &ns.layout, &opts.compactor).await?)
}
