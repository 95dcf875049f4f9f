//! Committing a fold or a compaction as manifest N+1, and what to do when
//! another committer got there first.
//!
//! A loser reloads the current manifest and *rebases* when the winner's
//! change does not touch its inputs, otherwise it *abandons* (its new
//! segments become orphans that GC removes after the grace period):
//!
//! | mine \ theirs | fold | compaction | GC |
//! |---|---|---|---|
//! | fold | abandon (same WAL range) | rebase (fold only adds) | commutes (GC commits nothing) |
//! | compaction | rebase (fold only adds) | rebase if input sets are disjoint, else abandon | commutes |
//!
//! Invariant: a committed change keeps `written = live + dropped`: a fold
//! adds the WAL's setsum to `written` and the merge's drops to `dropped`;
//! a compaction moves entries from its inputs to its outputs or `dropped`.

use reef_format::{IdempotencyRecord, Manifest, SegmentMeta, Setsum};
use reef_manifest::{Error as ManifestError, ManifestStore};

use crate::error::Result;

/// A change to commit.
#[derive(Clone, Debug)]
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
}

/// How a commit ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Committed as this manifest.
    Committed(Box<Manifest>),
    /// Given up: another committer's change overlapped (the reason says
    /// how). Nothing of this change is visible.
    Abandoned(String),
}

/// Rebases at most this many times before giving up.
const REBASES_MAX: u32 = 32;

fn applicable(current: &Manifest, change: &Change) -> Result<(), String> {
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
        Change::Fold { .. } => Ok(()),
    }
}

/// The manifest after `change`, on top of `current`.
fn apply(current: &Manifest, change: &Change, now_ms: u64, retention_ms: u64) -> Manifest {
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
            ..
        } => {
            next.last_applied_lsn = *to_lsn;
            next.last_version = next.last_version.max(*last_version);
            if let Some(seg) = segment {
                next.totals.folded_bytes += seg.object_bytes;
                next.segments.push(seg.clone());
            }
            next.totals.written = next.totals.written.add(&written.0);
            next.totals.written_count += written.1;
            next.totals.dropped = next.totals.dropped.add(&dropped.0);
            next.totals.dropped_count += dropped.1;
            let cutoff = now_ms.saturating_sub(retention_ms);
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
    }
    next
}

/// Commits `change` on top of `base`, rebasing over other commits where
/// the change commutes with them.
pub async fn commit_change(
    manifests: &ManifestStore,
    base: Manifest,
    change: &Change,
    now_ms: u64,
    retention_ms: u64,
) -> Result<Outcome> {
    let mut current = base;
    for _ in 0..REBASES_MAX {
        if let Err(reason) = applicable(&current, change) {
            return Ok(Outcome::Abandoned(reason));
        }
        let next = apply(&current, change, now_ms, retention_ms);
        // Check twice: never commit a manifest whose accounts do not add up.
        next.check_accounting(&manifests.layout().manifest_key(next.version))?;
        match manifests.commit(&next).await {
            Ok(_) => return Ok(Outcome::Committed(Box::new(next))),
            Err(ManifestError::ManifestConflict { .. }) => {
                current = manifests.load_current().await?.unwrap_or_default();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome::Abandoned(format!(
        "{REBASES_MAX} commits in a row lost the race"
    )))
}
