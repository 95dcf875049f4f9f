//! `reef repair`: brings a damaged namespace back to a state `verify`
//! accepts, from the bucket alone, losing nothing acknowledged unless told
//! to (`--accept-data-loss`), and then naming exactly what is given up.
//!
//! The plan, decided before anything is written:
//! 1. **HEAD** unreadable: replaced (put-if-match on the damaged bytes'
//!    tag) by one naming the newest listed version; missing or behind:
//!    moved forward by the usual CAS. HEAD never moves backwards.
//! 2. **The manifest to build on.** The newest decodable manifest M0 is
//!    used as it is when nothing newer is lost (unreadable, or named by
//!    HEAD and missing), its segments are intact and the WAL after it is a
//!    clean chain. Otherwise repair looks for the newest decodable M whose
//!    segments are intact and after which the WAL is a clean chain up to
//!    the newest record, reaching at least as far (LSN and version) as
//!    every decodable manifest and every intact unlisted segment: then
//!    nothing acknowledged is lost (**rollback**). Failing that, M0 is
//!    kept minus what is damaged (**loss**): its damaged segments are
//!    dropped and the WAL is cut at its first bad record (point in time,
//!    as RocksDB's `kPointInTimeRecovery`), and this needs
//!    `--accept-data-loss`; without it repair writes nothing and names the
//!    LSNs, ids and versions at stake.
//! 3. **One commit**, at version V = one past every version listed or
//!    named, by put-if-absent: M's segments (minus dropped ones) plus one
//!    level-0 segment folding the WAL's good run, `last_applied_lsn` at the
//!    end of the chain (past the cut), `gc_floor = V`. It folds *forward*:
//!    its `last_applied_lsn` and `last_version` are at least every
//!    decodable manifest's, so a live engine adopting it never loses what
//!    it had (check M1 of the safety argument, docs/architecture.md), and
//!    a GC that loaded a now-lost manifest deletes only WAL this commit
//!    already folded. The floor makes every operation based on an older
//!    version abandon, so no stale fold or compaction builds on what repair
//!    replaced. A cut LSN is recorded as folded with writer id 0, so a
//!    writer whose record there was not yet acknowledged re-plans it
//!    (`FoldedOthers`) rather than acknowledging it.
//! 4. **Quarantine**, only after HEAD is confirmed at V or later (the same
//!    fence GC keeps before deleting WAL): unreadable manifests, damaged
//!    segments the commit no longer lists, cut WAL records, unreadable
//!    leases and checkpoints, and pins on a snapshot that can no longer be
//!    read, are copied below `quarantine/` and deleted.
//! 5. **GC** with the given grace removes orphans.
//!
//! Known limits: a newest manifest lost together with every WAL record
//! and every segment recording what it folded is undetectable; and a
//! stale writer's stray record refilling a slot that a lost manifest had
//! folded and GC had freed reads as part of the chain (docs/semantics.md,
//! "Repair").

mod apply;
pub(crate) mod scan;

pub(crate) use apply::{build, dead_pins, quarantine};

use std::sync::Arc;

use anyhow::Result;
use reef_format::{Manifest, SegmentMeta};
use reef_manifest::store::DynStore;
use reef_manifest::{Clock, Layout, Rng};

use crate::verify::{Listing, list};
use scan::{Chain, HeadState, Manifests, SegmentCheck};

/// How to repair.
#[derive(Clone, Debug)]
pub struct RepairOptions {
    /// Plan and report only; write nothing.
    pub dry_run: bool,
    /// Allow fixes that give up acknowledged data (named in the report).
    pub accept_data_loss: bool,
    /// The grace GC gives superseded objects after the repair.
    pub gc_grace_ms: u64,
    /// The clock stamped into the commit and used by GC.
    pub clock: Arc<dyn Clock>,
    /// For the new segment's id.
    pub rng: Arc<dyn Rng>,
}

/// What a repair did (or, in a dry run, would do).
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// The namespace.
    pub namespace: String,
    /// The steps, in order.
    pub steps: Vec<String>,
    /// Acknowledged data given up (or that would be), exactly.
    pub losses: Vec<String>,
    /// A loss was needed and not accepted: nothing was written.
    pub refused: bool,
    /// The manifest version the repair committed.
    pub committed: Option<u64>,
}

/// The manifest to build on, and how.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per repair; boxing would buy nothing"
)]
pub(crate) enum Target {
    /// Nothing newer is lost and nothing it needs is damaged.
    Keep,
    /// Rebuild on an older intact manifest, folding the WAL forward.
    Rollback { base: Manifest, chain: Chain },
    /// Keep the newest decodable manifest minus what is damaged.
    Loss {
        damaged: Vec<(SegmentMeta, String)>,
        /// Unlisted segments that may hold what a lost manifest recorded.
        beyond: Vec<String>,
    },
}

/// What the plan found.
pub(crate) struct Survey {
    pub listing: Listing,
    pub head: HeadState,
    pub manifests: Manifests,
    /// The newest decodable manifest (the empty one if none decodes).
    pub m0: Manifest,
    /// The WAL after `m0`.
    pub m0_chain: Chain,
    /// Versions newer than `m0` that are lost, with why.
    pub lost: Vec<(u64, String)>,
    /// One past every version listed or named by HEAD.
    pub next_version: u64,
    /// Every damaged segment found while planning, with why.
    pub damaged_segments: std::collections::BTreeMap<u128, String>,
    pub target: Target,
}

/// Repairs namespace `ns` (see the module doc).
pub async fn repair(store: &DynStore, ns: &str, opts: &RepairOptions) -> Result<RepairReport> {
    let layout = Layout::new(ns)?;
    let survey = survey(store, &layout).await?;
    let mut report = RepairReport {
        namespace: ns.to_owned(),
        ..RepairReport::default()
    };
    losses(&layout, &survey, &mut report);
    if matches!(survey.target, Target::Loss { .. }) && !opts.accept_data_loss {
        report.refused = true;
        return Ok(report);
    }
    apply::run(store, &layout, survey, opts, &mut report).await?;
    Ok(report)
}

async fn survey(store: &DynStore, layout: &Layout) -> Result<Survey> {
    let listing = list(store, layout).await?;
    let head = scan::read_head(store, layout).await?;
    let manifests = scan::read_manifests(store, &listing).await?;
    let m0 = manifests.newest().cloned().unwrap_or_default();
    let newest_listed = listing.manifests.keys().next_back().copied().unwrap_or(0);
    let mut lost: Vec<(u64, String)> = manifests
        .unreadable
        .range(m0.version + 1..)
        .map(|(v, why)| (*v, why.clone()))
        .collect();
    let mut top = newest_listed;
    if let HeadState::Names { version } = head
        && version > newest_listed
    {
        lost.push((version, "missing, but HEAD names it".to_owned()));
        top = version;
    }
    let m0_chain = scan::read_chain(
        store,
        layout,
        &listing,
        m0.last_applied_lsn,
        m0.last_version,
    )
    .await?;
    let mut segs = SegmentCheck::new(store, layout, &listing);
    let m0_damaged = segs.damaged_in(&m0).await?;
    let target = if lost.is_empty() && m0_damaged.is_empty() && m0_chain.broken_at.is_none() {
        Target::Keep
    } else {
        match rollback_target(store, layout, &listing, &manifests, &lost, &mut segs).await? {
            Some((base, chain)) => Target::Rollback { base, chain },
            None => {
                let reach = m0_chain.max_version().unwrap_or(0).max(m0.last_version);
                let beyond = if lost.is_empty() {
                    Vec::new()
                } else {
                    segments_beyond(&listing, &m0, reach, &mut segs).await?
                };
                Target::Loss {
                    damaged: m0_damaged,
                    beyond,
                }
            }
        }
    };
    let damaged_segments = segs
        .damaged_so_far()
        .map(|(id, why)| (id, why.to_owned()))
        .collect();
    drop(segs);
    Ok(Survey {
        next_version: top.max(m0.version) + 1,
        damaged_segments,
        listing,
        head,
        manifests,
        m0,
        m0_chain,
        lost,
        target,
    })
}

/// The newest manifest (the empty one last) to roll back to with nothing
/// acknowledged lost, and the WAL chain after it.
async fn rollback_target(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    manifests: &Manifests,
    lost: &[(u64, String)],
    segs: &mut SegmentCheck<'_>,
) -> Result<Option<(Manifest, Chain)>> {
    let max_lsn = manifests
        .decodable
        .values()
        .map(|m| m.last_applied_lsn)
        .max()
        .unwrap_or(0);
    let max_version = manifests
        .decodable
        .values()
        .map(|m| m.last_version)
        .max()
        .unwrap_or(0);
    let empty = Manifest::default();
    let candidates = manifests.decodable.values().rev().chain([&empty]);
    for m in candidates {
        if !segs.damaged_in(m).await?.is_empty() {
            continue;
        }
        let chain =
            scan::read_chain(store, layout, listing, m.last_applied_lsn, m.last_version).await?;
        if chain.broken_at.is_some() {
            continue;
        }
        let reach_lsn = chain.good_end(m.last_applied_lsn);
        let reach_version = chain.max_version().unwrap_or(0).max(m.last_version);
        if reach_lsn < max_lsn || reach_version < max_version {
            continue;
        }
        // A lost manifest may have recorded segments whose WAL is gone:
        // any segment m does not list that holds newer versions than the
        // chain reaches (or cannot be read) may hold data only it had.
        if !lost.is_empty()
            && !segments_beyond(listing, m, reach_version, segs)
                .await?
                .is_empty()
        {
            continue;
        }
        return Ok(Some((m.clone(), chain)));
    }
    Ok(None)
}

/// Listed segments `m` does not list that hold versions above `reach`, or
/// cannot be read: each with what it holds.
async fn segments_beyond(
    listing: &Listing,
    m: &Manifest,
    reach: u64,
    segs: &mut SegmentCheck<'_>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (&id, (key, size)) in &listing.segments {
        if m.segments.iter().any(|s| s.id == id) {
            continue;
        }
        match segs.footer(id, *size).await? {
            Ok(f) if f.max_version <= reach => {}
            Ok(f) => out.push(format!(
                "{key}: versions {}..={}, ids {:?}..={:?}, {} entries",
                f.min_version, f.max_version, f.min_id, f.max_id, f.entry_count
            )),
            Err(why) => out.push(format!("{key}: unreadable ({why})")),
        }
    }
    Ok(out)
}

/// Fills `report.losses` for a `Loss` target: exactly what is at stake.
fn losses(layout: &Layout, s: &Survey, report: &mut RepairReport) {
    let Target::Loss { damaged, beyond } = &s.target else {
        return;
    };
    for (v, why) in &s.lost {
        report.losses.push(format!(
            "{}: {why}; whatever only it recorded is lost",
            layout.manifest_key(*v)
        ));
    }
    for seg in beyond {
        report.losses.push(format!(
            "{seg}: recorded by no readable manifest, beyond what the WAL holds; left out"
        ));
    }
    for (seg, why) in damaged {
        report.losses.push(format!(
            "{} ({why}): level {}, ids {:?}..={:?}, versions {}..={}, {} entries ({} deletions); \
             older versions of those ids may show again",
            layout.segment_key(seg.id),
            seg.level,
            seg.min_id,
            seg.max_id,
            seg.min_version,
            seg.max_version,
            seg.entry_count,
            seg.tombstone_count
        ));
    }
    let chain = &s.m0_chain;
    if let Some((at, why)) = &chain.broken_at {
        report.losses.push(format!(
            "WAL after LSN {} is cut at {} ({why}): LSNs {at}..={} are lost",
            s.m0.last_applied_lsn,
            layout.wal_key(*at),
            chain.top
        ));
        for (lsn, record) in &chain.after_break {
            report.losses.push(match record {
                Some(r) => {
                    let ids: Vec<&str> = r.entries().map(|e| e.id.as_str()).collect();
                    let lo = r.entries().map(|e| e.version).min().unwrap_or(0);
                    let hi = r.entries().map(|e| e.version).max().unwrap_or(0);
                    format!("LSN {lsn}: versions {lo}..={hi}, ids {}", ids.join(","))
                }
                None => format!("LSN {lsn}: unreadable; its writes are lost"),
            });
        }
    }
}
