//! `reef rebuild`: a new manifest from the segments and WAL found in the
//! bucket, for a namespace none of whose manifests can be read (deleted,
//! or all damaged). `reef repair` is the tool while one still decodes.
//!
//! What it chooses, and why:
//! - **Segments: every intact one**, each read whole and checked (blocks,
//!   footer, the entries against the footer's setsum), all at level 0.
//!   Each is copied to a fresh id based on the new version (a paused GC
//!   may already have decided to delete the old id; nobody has listed the
//!   new one). Without a manifest nothing says which segments a compaction replaced;
//!   but segments are immutable and every entry carries its version, so
//!   the union holds, per id, the newest version any of them ever held, and
//!   reads take the newest (a superseded compaction input only repeats
//!   entries its output also has). Level 0 may overlap, so no level
//!   invariant is claimed that the set might break; the next compaction
//!   merges them into level 1 and drops the repeats. Two segments with the
//!   same entries (a retried fold) are used once.
//! - **WAL**: `last_applied_lsn` is the last readable record whose
//!   versions all lie at or below the newest segment version, before the
//!   first readable one that does not (an unreadable record decides
//!   nothing). The records after it must form a clean chain; a break cuts
//!   it there (the good run before it is folded), and the cut records are
//!   reported and quarantined (as `repair --accept-data-loss` does). With
//!   no WAL listed it is 0 and new writes start at LSN 1. LSNs are not
//!   pushed past what the WAL shows: a slot skipped that way would swallow
//!   a record a live writer put meanwhile; a paused writer's late record at
//!   an old LSN instead shows as a hole or as versions going back, which
//!   readers refuse (loudly).
//! - **The commit**: version V, one past every version listed or named by
//!   HEAD, a lease, a checkpoint or a segment id (its operation's base),
//!   by put-if-absent at every version from one past the newest listed up
//!   to V, each with the GC floor at its version: a process that believes
//!   the namespace empty (all manifests deleted) collides instead of being
//!   passed over, and nothing based on an older version commits after it. Totals restart from the segments
//!   (`written = live`, nothing dropped).
//!
//! What is lost with the manifests and cannot come back: the idempotency
//! records (a retry of an old request is applied again) and the window of
//! recent writers (a writer whose fence runs across the rebuild gets
//! `Fenced`, outcome unknown). Segments a crashed GC left half-deleted can
//! bring back an older version of an id whose deletion was compacted
//! away; rebuild reports every segment it used so an operator can judge.
//! A segment a stale fold left behind (abandoned, never committed) can
//! hold a stray record's entries no writer acknowledged; with no manifest
//! nothing tells it apart. Run rebuild with writers and compactors
//! stopped; it refuses (exit 75) when a listed manifest vanishes while it
//! reads, which means something is still collecting.

use std::sync::Arc;

use anyhow::{Context, Result};
use reef_format::segment::Segment;
use reef_format::{Manifest, SegmentMeta, Totals};
use reef_manifest::store::DynStore;
use reef_manifest::{Layout, ManifestStore};

use crate::repair::scan::{self, HeadState, SegmentCheck};
use crate::repair::{
    Plan, Raced, RepairOptions, build, commit_gapless, judge_pins, quarantine, quarantine_copy,
    quarantine_delete,
};
use crate::verify::list;

/// What a rebuild did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RebuildReport {
    /// The namespace.
    pub namespace: String,
    /// Objects the new manifest is built from.
    pub used: Vec<String>,
    /// Objects left out, with why.
    pub skipped: Vec<String>,
    /// Steps taken (or that would be), in order.
    pub steps: Vec<String>,
    /// The manifest version committed.
    pub committed: Option<u64>,
}

/// The namespace has a readable manifest: rebuild is the wrong tool.
#[derive(Debug)]
pub struct HasManifest(pub String);

impl std::fmt::Display for HasManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HasManifest {}

/// Rebuilds namespace `ns` (see the module doc).
pub async fn rebuild(store: &DynStore, ns: &str, opts: &RepairOptions) -> Result<RebuildReport> {
    let dry_run = opts.dry_run;
    let layout = Layout::new(ns)?;
    let head = scan::read_head(store, &layout).await?;
    let listing = list(store, &layout).await?;
    let found = scan::read_manifests(store, &listing).await?;
    let gone = listing.manifests.len() - found.decodable.len() - found.unreadable.len();
    if gone > 0 {
        // Listed, then collected: something is committing and collecting
        // right now, which rebuild cannot fence.
        return Err(Raced(format!(
            "{gone} manifest(s) of {ns} vanished while rebuild read them: a compactor or GC \
             is running; stop every writer and compactor, then run rebuild (or repair) again"
        ))
        .into());
    }
    if let Some(m) = found.newest() {
        return Err(HasManifest(format!(
            "{} decodes: namespace {ns} has a manifest to build on; use `reef repair {ns}`",
            layout.manifest_key(m.version)
        ))
        .into());
    }
    let mut report = RebuildReport {
        namespace: ns.to_owned(),
        ..RebuildReport::default()
    };
    let say = |report: &mut RebuildReport, what: String| {
        report.steps.push(if dry_run {
            format!("would {what}")
        } else {
            what
        });
    };

    // Segments: every intact one, once. Memory: one segment at a time.
    let mut segments: Vec<SegmentMeta> = Vec::new();
    let mut doomed: Vec<(String, String, Option<bytes::Bytes>)> = Vec::new();
    for (&id, (key, size)) in &listing.segments {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        let checked = Segment::open(obj.bytes, key).and_then(|s| s.verify().map(|()| s));
        let seg = match checked {
            Ok(seg) => seg,
            Err(e) => {
                report.skipped.push(format!("{key}: {e}"));
                doomed.push((key.clone(), e.to_string(), None));
                continue;
            }
        };
        let meta = SegmentMeta::from_footer(id, 0, *size, seg.footer());
        if let Some(twin) = segments.iter().find(|s| same_entries(s, &meta)) {
            report.skipped.push(format!(
                "{key}: the same entries as {}",
                layout.segment_key(twin.id)
            ));
            continue;
        }
        report.used.push(format!(
            "{key}: ids {:?}..={:?}, versions {}..={}, {} entries (copied to a fresh id)",
            meta.min_id, meta.max_id, meta.min_version, meta.max_version, meta.entry_count
        ));
        segments.push(meta);
    }
    segments.sort_by_key(|s| (s.max_version, s.id));
    let seg_version = segments.iter().map(|s| s.max_version).max().unwrap_or(0);

    // WAL: folded up to the last readable record the segments cover
    // before the first readable one they do not (an unreadable record
    // decides nothing: folded if a covered one follows it, a break in the
    // chain otherwise).
    let mut lal = 0;
    for (&lsn, key) in &listing.wal {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match reef_format::WalRecord::decode(&obj.bytes, key) {
            Ok(r) if r.lsn == lsn && r.entries().all(|e| e.version <= seg_version) => lal = lsn,
            Ok(r) if r.lsn == lsn => {
                // The first record the segments do not hold: everything
                // before it was folded (what is missing there, collected).
                if lsn > lal + 1 {
                    report.skipped.push(format!(
                        "WAL LSNs {}..={}: not in the bucket; taken as folded and collected",
                        lal + 1,
                        lsn - 1
                    ));
                }
                lal = lsn - 1;
                break;
            }
            _ => {}
        }
    }
    let chain = scan::read_chain(store, &layout, &listing, lal, seg_version).await?;
    let cut = chain.broken_at.as_ref().map(|(at, _)| (*at, chain.top));
    if let Some(first) = chain.good.first() {
        report.used.push(format!(
            "WAL LSNs {}..={}: {}",
            first.lsn,
            chain.good_end(lal),
            if cut.is_some() {
                "folded into a new level-0 segment"
            } else {
                "unfolded, replayed by readers"
            }
        ));
    }
    if let Some((at, why)) = &chain.broken_at {
        report.skipped.push(format!(
            "WAL LSNs {at}..={}: the chain breaks at {} ({why}); cut there",
            chain.top,
            layout.wal_key(*at)
        ));
        for lsn in (*at..=chain.top).filter(|l| listing.wal.contains_key(l)) {
            doomed.push((layout.wal_key(lsn), "cut from the WAL".to_owned(), None));
        }
    }

    let mut top = listing.manifests.keys().copied().max().unwrap_or(0);
    if let HeadState::Names { version } = head {
        top = top.max(version);
    }
    top = top.max(crate::repair::segment_bases_top(&listing));
    let mut segs = SegmentCheck::new(store, &layout, &listing);
    for judged in judge_pins(store, &layout, &listing, &found, &mut segs).await? {
        top = top.max(judged.pinned.unwrap_or(0));
        if let Some(why) = judged.pin.dead {
            doomed.push((judged.pin.key, why, Some(judged.pin.bytes)));
        }
    }
    drop(segs);
    let version = top
        .checked_add(1)
        .context("no manifest version is left above the ones in use")?;
    let live = segments
        .iter()
        .fold(reef_format::Setsum::EMPTY, |s, seg| s.add(&seg.setsum));
    let base = Manifest {
        totals: Totals {
            written: live,
            written_count: segments.iter().map(|s| s.entry_count).sum(),
            ..Totals::default()
        },
        last_version: seg_version,
        segments,
        ..Manifest::default()
    };
    let plan = Plan {
        base,
        jump_to: Some(lal),
        // A cut needs the run before it folded (a manifest cannot call
        // the cut folded while the run before it is not); otherwise the
        // run stays unfolded and readers replay it.
        records: if cut.is_some() {
            chain.good.clone()
        } else {
            Vec::new()
        },
        cut,
        version_floor: if cut.is_some() {
            chain.max_version().unwrap_or(0)
        } else {
            0
        },
        copy_segments: true,
    };
    let key = layout.manifest_key(version);
    say(
        &mut report,
        format!(
            "commit {key}: {} segments, last_applied_lsn {}, GC floor {version}",
            plan.base.segments.len(),
            cut.map_or(lal, |(_, top)| top.max(lal)),
        ),
    );
    let first_free = listing.manifests.keys().next_back().map_or(1, |v| v + 1);
    if let HeadState::Unreadable { why, .. } = &head {
        // First, so that the commit can create HEAD afresh.
        say(
            &mut report,
            format!("quarantine {} ({why})", layout.head_key()),
        );
        if !dry_run {
            quarantine(store, &layout, &layout.head_key()).await?;
        }
    }
    for (version, why) in &found.unreadable {
        doomed.push((layout.manifest_key(*version), why.clone(), None));
    }
    // Copied before the commit (after it, a GC may delete what the new
    // manifest does not list), deleted after it.
    let mut copied = Vec::new();
    for (k, why, expected) in &doomed {
        say(&mut report, format!("quarantine {k} ({why})"));
        if !dry_run {
            copied.push(quarantine_copy(store, &layout, k, expected.as_ref()).await?);
        }
    }
    if !dry_run {
        let manifest = build(store, &layout, plan, version, opts).await?;
        let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
        commit_gapless(&manifests, &manifest, first_free).await?;
        manifests.ensure_head_at_least(version).await?;
        report.committed = Some(version);
    }
    for ((k, _, _), copy) in doomed.iter().zip(copied) {
        if let Some(bytes) = copy
            && !quarantine_delete(store, k, &bytes).await?
        {
            report
                .steps
                .push(format!("left {k}: it changed since rebuild read it"));
        }
    }
    Ok(report)
}

/// Two segments with the same entries (a retried fold's twin).
fn same_entries(a: &SegmentMeta, b: &SegmentMeta) -> bool {
    a.setsum == b.setsum
        && a.entry_count == b.entry_count
        && a.min_version == b.min_version
        && a.max_version == b.max_version
        && a.min_id == b.min_id
        && a.max_id == b.max_id
}
