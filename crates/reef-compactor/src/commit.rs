//! Committing a fold or a compaction as manifest N+1, and what to do when
//! another committer got there first.
//!
//! A loser reloads the current manifest and *rebases* when the winner's
//! change does not touch its inputs, otherwise it *abandons* (its new
//! segments become orphans that GC removes after the grace period):
//!
//! | mine \ theirs | fold | compaction | GC floor raise |
//! |---|---|---|---|
//! | fold | abandon (same WAL range) | rebase (fold only adds) | rebase, unless the floor passed my base: abandon |
//! | compaction | rebase (fold only adds) | rebase if input sets are disjoint, else abandon | rebase, unless the floor passed my base: abandon |
//! | GC floor raise | rebase | rebase | rebase (the higher floor wins) |
//!
//! The floor rule is what lets GC delete an unreferenced segment without
//! trusting any clock: a segment id carries the version its operation was
//! based on, and once a manifest with a higher `gc_floor` is committed no
//! operation from that era can commit, however long it was paused.
//!
//! Invariants, checked by `invariants::check_next` before every commit:
//! `written = live + dropped` (a fold adds the WAL's setsum to `written`
//! and its drops to `dropped`; a compaction moves entries from its inputs
//! to its outputs or `dropped`); `last_applied_lsn`, `last_version` and
//! `gc_floor` never decrease; every segment a commit adds was written by
//! an operation based at or above the floor.

use reef_format::{IdempotencyRecord, Manifest, RECENT_WRITERS_MAX, SegmentMeta, Setsum};
use reef_manifest::{Error as ManifestError, ManifestStore};

use crate::error::Result;
use crate::options::CompactorOptions;

/// A change to commit.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per fold, compaction or GC run; boxing would buy nothing"
)]
pub enum Change {
    /// WAL `(from_lsn, to_lsn]` folded into (at most) one level-0 segment.
    Fold {
        /// The manifest's `last_applied_lsn` the fold started from.
        from_lsn: u64,
        /// The last LSN folded.
        to_lsn: u64,
        /// The highest version in the folded records.
        last_version: u64,
        /// The new segment (none if every entry was dropped).
        segment: Option<SegmentMeta>,
        /// Setsum and count of every entry of the folded records.
        written: (Setsum, u64),
        /// Setsum and count of entries superseded within the fold.
        dropped: (Setsum, u64),
        /// Idempotency keys of the folded requests.
        idempotency: Vec<IdempotencyRecord>,
        /// Writer ids of the folded records, in LSN order.
        writers: Vec<u64>,
    },
    /// Segments replaced by level-1 segments.
    Compact {
        /// Ids of the input segments.
        inputs: Vec<u128>,
        /// The new segments.
        outputs: Vec<SegmentMeta>,
        /// Setsum and count of entries dropped.
        dropped: (Setsum, u64),
    },
    /// GC raises the floor to this version (capped at the version this
    /// commit creates).
    RaiseFloor {
        /// The new floor.
        floor: u64,
    },
}

impl Change {
    /// The kind of change, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Fold { .. } => "fold",
            Change::Compact { .. } => "compaction",
            Change::RaiseFloor { .. } => "gc floor",
        }
    }
}

/// How a commit ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Committed as this manifest; with why HEAD was not moved to it, if
    /// moving it failed (the commit stands either way).
    Committed(Box<Manifest>, Option<String>),
    /// Given up: another committer's change overlapped (the reason says
    /// how). Nothing of this change is visible.
    Abandoned(String),
}

/// Rebases at most this many times before giving up.
const REBASES_MAX: u32 = 32;

fn applicable(
    current: &Manifest,
    base_version: u64,
    change: &Change,
    opts: &CompactorOptions,
) -> Result<(), String> {
    let writes_segments = !matches!(change, Change::RaiseFloor { .. });
    if writes_segments && current.gc_floor > base_version && !opts.sabotage.skip_floor_check {
        return Err(format!(
            "GC raised the floor to {} past this operation's base version {base_version}; its output may be collected",
            current.gc_floor
        ));
    }
    match change {
        Change::Fold { from_lsn, .. } if current.last_applied_lsn != *from_lsn => Err(format!(
            "another fold already advanced last_applied_lsn from {from_lsn} to {}",
            current.last_applied_lsn
        )),
        Change::Compact { inputs, .. } => match inputs
            .iter()
            .find(|id| !current.segments.iter().any(|s| s.id == **id))
        {
            Some(id) => Err(format!(
                "input segment {id:032x} was replaced by another compaction"
            )),
            None => Ok(()),
        },
        Change::Fold { .. } | Change::RaiseFloor { .. } => Ok(()),
    }
}

/// The manifest after `change`, on top of `current` (version + 1; no
/// checks: `commit_change` runs `invariants::check_next` on it, and
/// `reef repair` checks what it builds from it itself).
pub fn next_manifest(
    current: &Manifest,
    change: &Change,
    now_ms: u64,
    retention_ms: u64,
) -> Manifest {
    let mut next = current.clone();
    next.version = current.version + 1;
    next.created_at_ms = now_ms;
    match change {
        Change::Fold {
            to_lsn,
            last_version,
            segment,
            written,
            dropped,
            idempotency,
            writers,
            ..
        } => {
            next.last_applied_lsn = *to_lsn;
            // The window stays contiguous: it ended at `from_lsn`, which is
            // `current.last_applied_lsn` (checked by `applicable`).
            next.recent_writers.extend_from_slice(writers);
            let excess = next.recent_writers.len().saturating_sub(RECENT_WRITERS_MAX);
            next.recent_writers.drain(..excess);
            next.last_version = next.last_version.max(*last_version);
            if let Some(seg) = segment {
                next.totals.folded_bytes += seg.object_bytes;
                next.segments.push(seg.clone());
            }
            next.totals.written = next.totals.written.add(&written.0);
            next.totals.written_count += written.1;
            next.totals.dropped = next.totals.dropped.add(&dropped.0);
            next.totals.dropped_count += dropped.1;
            // One retention per namespace: the manifest's, once it has one.
            if next.idempotency_retention_ms == 0 {
                next.idempotency_retention_ms = retention_ms;
            }
            let cutoff = now_ms.saturating_sub(next.idempotency_retention_ms);
            next.idempotency.retain(|r| r.committed_at_ms >= cutoff);
            for rec in idempotency.iter().filter(|r| r.committed_at_ms >= cutoff) {
                next.idempotency.retain(|r| r.key != rec.key);
                next.idempotency.push(rec.clone());
            }
        }
        Change::Compact {
            inputs,
            outputs,
            dropped,
        } => {
            next.segments.retain(|s| !inputs.contains(&s.id));
            next.segments.extend(outputs.iter().cloned());
            next.totals.compacted_bytes += outputs.iter().map(|s| s.object_bytes).sum::<u64>();
            next.totals.dropped = next.totals.dropped.add(&dropped.0);
            next.totals.dropped_count += dropped.1;
        }
        Change::RaiseFloor { floor } => {
            next.gc_floor = next.gc_floor.max((*floor).min(next.version));
        }
    }
    next
}

/// Whether `version`, just created, sits below the current GC floor. GC
/// collects a version only after committing a floor above it, and moves
/// HEAD past it first; so a put that succeeds there when HEAD is already
/// further refilled a collected slot (an operation based on a stale base
/// that paused long enough), and nothing will ever build on it. (It may
/// also be a real commit that was superseded and passed by the floor in
/// the meantime; reporting that one as abandoned is harmless.)
async fn off_the_chain(manifests: &ManifestStore, version: u64) -> Result<bool> {
    let current = manifests.load_current().await?.unwrap_or_default();
    Ok(current.gc_floor > version)
}

/// Commits `change` on top of `base` (the manifest the operation started
/// from), rebasing over other commits where the change commutes with them.
pub async fn commit_change(
    manifests: &ManifestStore,
    base: Manifest,
    change: &Change,
    opts: &CompactorOptions,
) -> Result<Outcome> {
    let base_version = base.version;
    let mut current = base;
    for _ in 0..REBASES_MAX {
        if let Err(reason) = applicable(&current, base_version, change, opts) {
            tracing::info!(
                namespace = manifests.layout().namespace(),
                change = change.name(),
                %reason,
                "abandoned"
            );
            return Ok(Outcome::Abandoned(reason));
        }
        // The stamp is a hint for GC's grace period, taken at each attempt.
        let now_ms = opts.clock.now_ms();
        let next = next_manifest(&current, change, now_ms, opts.idempotency_retention_ms);
        crate::invariants::check_next(
            manifests.layout(),
            &current,
            &next,
            !opts.sabotage.skip_floor_check,
        )?;
        match manifests.commit(&next).await {
            Ok(c) if !c.head_advanced && off_the_chain(manifests, next.version).await? => {
                tracing::info!(
                    namespace = manifests.layout().namespace(),
                    version = next.version,
                    change = change.name(),
                    "abandoned: the version slot was below the GC floor"
                );
                return Ok(Outcome::Abandoned(format!(
                    "manifest {} landed where GC had collected a version below its floor; \
                     it is not part of the chain",
                    next.version
                )));
            }
            Ok(c) => {
                tracing::info!(
                    namespace = manifests.layout().namespace(),
                    version = next.version,
                    change = change.name(),
                    segments = next.segments.len(),
                    last_applied_lsn = next.last_applied_lsn,
                    "committed"
                );
                if let Some(e) = &c.head_error {
                    tracing::warn!(
                        namespace = manifests.layout().namespace(),
                        version = next.version,
                        error = %e,
                        "committed, but HEAD was not moved"
                    );
                }
                return Ok(Outcome::Committed(Box::new(next), c.head_error));
            }
            Err(ManifestError::ManifestConflict { .. }) => {
                tracing::debug!(
                    namespace = manifests.layout().namespace(),
                    version = next.version,
                    change = change.name(),
                    "lost the race for this version; reloading to rebase"
                );
                current = manifests.load_current().await?.unwrap_or_default();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Abandoned(format!(
        "{REBASES_MAX} commits in a row lost the race"
    )))
}
