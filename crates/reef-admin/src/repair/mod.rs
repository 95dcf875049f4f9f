//! `reef repair`: brings a damaged namespace back to a state `verify`
//! accepts, from the bucket alone, losing nothing acknowledged unless told
//! to (`--accept-data-loss`), and then naming exactly what is given up.
//!
//! The survey, before anything is written, reads HEAD *first* (a manifest
//! HEAD names was committed before the listing, so the listing shows it
//! unless it is really gone), then lists and reads every manifest, checks
//! segments whole (every block), reads the WAL as a chain, and judges
//! every lease and checkpoint (keeping the bytes it judged).
//!
//! The plan:
//! 1. **HEAD** unreadable: replaced (put-if-match on the damaged bytes'
//!    tag) by one naming the newest listed version; missing or behind:
//!    moved forward by the usual CAS. HEAD never moves backwards.
//! 2. **The manifest to build on.** The newest decodable manifest M0 is
//!    used as it is when nothing newer is lost (unreadable, or named by
//!    HEAD and missing), its segments are intact and the WAL after it is a
//!    clean chain. Otherwise repair looks for the newest decodable M whose
//!    segments are intact and after which the WAL is a clean chain up to
//!    the newest record, reaching at least as far (LSN and version) as
//!    every decodable manifest on the chain (at or above the newest floor)
//!    and every intact segment M does not list: then nothing acknowledged
//!    is lost (**rollback**). Failing that, M0 is kept minus what is
//!    damaged (**loss**): its damaged segments are dropped, intact segments
//!    only a lost manifest recorded are carried, and the WAL is cut at its first
//!    bad record (point in time, as RocksDB's `kPointInTimeRecovery`); a
//!    hole right after M0 when a manifest is lost is read as WAL that
//!    manifest folded and GC collected, and the chain resumes after it
//!    rather than cutting the whole records that follow. This needs
//!    `--accept-data-loss`; without it repair writes nothing and names the
//!    LSNs, ids and versions at stake (exit 3).
//! 3. **The commit** at V = one past every version listed, named by HEAD
//!    or a pin, or carried in a segment id: M's segments (minus dropped
//!    ones) plus one level-0 segment folding the WAL's good run,
//!    `last_applied_lsn` at the end of the chain (past a cut or a hole),
//!    `gc_floor = V`. It folds *forward*: its `last_applied_lsn` and
//!    `last_version` are at least every manifest's on the chain (checked),
//!    so a live engine adopting it never loses what it had (M1 of the
//!    safety argument, docs/architecture.md; the engine also refuses a
//!    manifest that goes backwards). It is put at *every* version from one
//!    past the newest listed up to V, each by put-if-absent with the floor
//!    at its own version: a process that committed since the survey
//!    collides (exit 75) instead of being passed over, and every operation
//!    based on an older version abandons. When it builds on anything but
//!    M0, or a manifest is lost, the segments it carries are copied to
//!    fresh ids first: a paused GC may have decided, from a manifest that
//!    is now lost, to delete the old ids; nobody has listed the new ones.
//!    Skipped LSNs (a cut, a hole) are recorded as folded by writer id 0,
//!    which no writer draws: a writer whose record sat there and was not
//!    yet acknowledged re-plans it (`FoldedOthers`).
//! 4. **Quarantine**: unreadable manifests, damaged segments the commit no
//!    longer lists, cut WAL records, and leases and checkpoints that are
//!    unreadable or pin a snapshot that can no longer be read are copied
//!    below `quarantine/` *before* the commit (a GC after it may collect
//!    them), and deleted from their place only after HEAD is confirmed at
//!    V or later (the fence GC keeps before deleting WAL), and only if they
//!    still hold the bytes copied.
//! 5. **GC** with the given grace removes orphans.
//!
//! Known limits (docs/semantics.md, "Repair and rebuild"): a newest
//! manifest lost together with every WAL record and every segment
//! recording what it folded is undetectable; a stale writer's stray record
//! refilling a slot that a lost manifest had folded and GC had freed reads
//! as part of the chain; and a checkpoint re-created between repair's last
//! read of it and its delete is deleted (the known checkpoint-delete gap).

mod apply;
pub(crate) mod scan;

pub use apply::Raced;
pub(crate) use apply::{
    Plan, build, commit_gapless, quarantine, quarantine_copy, quarantine_delete,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
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
#[derive(Clone, Debug, Default, serde::Serialize)]
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

/// A lease or checkpoint, as the survey judged it.
pub(crate) struct Pin {
    pub key: String,
    /// The bytes judged: deleted only if they are still these.
    pub bytes: bytes::Bytes,
    /// Why it must go (unreadable, or its snapshot can no longer be read).
    pub dead: Option<String>,
}

/// A listed segment no usable manifest lists that may hold what a lost
/// manifest recorded.
pub(crate) struct Beyond {
    pub what: String,
    pub max_version: Option<u64>,
    /// Intact: carried into the repair (a `Loss`), at level 0.
    pub meta: Option<SegmentMeta>,
}

/// The manifest to build on, and how.
pub(crate) enum Target {
    /// Nothing newer is lost and nothing it needs is damaged.
    Keep,
    /// Rebuild on an older intact manifest, folding the WAL forward.
    Rollback { base: Manifest, chain: Chain },
    /// Keep the newest decodable manifest minus what is damaged.
    Loss {
        damaged: Vec<(SegmentMeta, String)>,
        beyond: Vec<Beyond>,
        /// The WAL after `jump_to` (or after `m0`).
        chain: Chain,
        /// A hole right after `m0` that a lost manifest folded and GC
        /// collected: the LSN the chain resumes after.
        jump_to: Option<u64>,
    },
}

/// What the plan found.
pub(crate) struct Survey {
    pub listing: Listing,
    pub head: HeadState,
    pub manifests: Manifests,
    /// The newest decodable manifest (the empty one if none decodes).
    pub m0: Manifest,
    /// Versions newer than `m0` that are lost, with why.
    pub lost: Vec<(u64, String)>,
    /// The newest listed manifest version (0: none).
    pub newest_listed: u64,
    /// The version the repair commits: one past every version listed,
    /// named by HEAD or a pin, or carried in a segment id.
    pub next_version: u64,
    /// Every damaged segment found while planning, with why.
    pub damaged_segments: BTreeMap<u128, String>,
    /// Leases and checkpoints, judged before anything is written.
    pub pins: Vec<Pin>,
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
    // HEAD before the listing: a manifest HEAD names was committed before
    // this read, so the listing shows it unless it is really gone. (Read
    // after, a commit racing the listing would look lost.)
    let head = scan::read_head(store, layout).await?;
    let listing = list(store, layout).await?;
    let manifests = scan::read_manifests(store, &listing).await?;
    let m0 = manifests.newest().cloned().unwrap_or_default();
    let newest_listed = listing.manifests.keys().next_back().copied().unwrap_or(0);
    let mut lost: Vec<(u64, String)> = manifests
        .unreadable
        .range(m0.version + 1..)
        .map(|(v, why)| (*v, why.clone()))
        .collect();
    let mut top = newest_listed.max(m0.version);
    if let HeadState::Names { version } = head
        && version > newest_listed
    {
        lost.push((version, "missing, but HEAD names it".to_owned()));
        top = top.max(version);
    }
    top = top.max(segment_bases_top(&listing));
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
                let (chain, jump_to) =
                    loss_chain(store, layout, &listing, &m0, &lost, m0_chain).await?;
                // What the kept WAL covers: the versions of its good run
                // (a cut record's are not in the new manifest), and with
                // no jump everything from `m0` up to them.
                let versions: Vec<u64> = chain
                    .good
                    .iter()
                    .flat_map(|r| r.entries().map(|e| e.version))
                    .collect();
                let first = versions.iter().copied().min();
                let last = versions.iter().copied().max().unwrap_or(0);
                let from = if jump_to.is_some() {
                    first.unwrap_or(u64::MAX)
                } else {
                    0
                };
                let covered =
                    |lo: u64, hi: u64| hi <= m0.last_version || (lo >= from && hi <= last);
                let beyond = if lost.is_empty() {
                    Vec::new()
                } else {
                    segments_beyond(&listing, &m0, &covered, &mut segs).await?
                };
                Target::Loss {
                    damaged: m0_damaged,
                    beyond,
                    chain,
                    jump_to,
                }
            }
        }
    };
    let pins = judge_pins(store, layout, &listing, &manifests, &mut segs).await?;
    for pin in &pins {
        top = top.max(pin.pinned.unwrap_or(0));
    }
    let damaged_segments = segs
        .damaged_so_far()
        .map(|(id, why)| (id, why.to_owned()))
        .collect();
    drop(segs);
    Ok(Survey {
        next_version: top
            .checked_add(1)
            .context("no manifest version is left above the ones in use")?,
        newest_listed,
        damaged_segments,
        pins: pins.into_iter().map(|p| p.pin).collect(),
        listing,
        head,
        manifests,
        m0,
        lost,
        target,
    })
}

/// Segment ids of this era carry their operation's base version; those
/// written before it (format v1) carry a creation time in milliseconds,
/// far above 2^40 (a version per millisecond for 35 years): not a version.
const BASE_VERSION_MAX: u64 = 1 << 40;

/// One past the highest base version a segment id carries (the chain
/// reached it): the repair commit lands above it.
pub(crate) fn segment_bases_top(listing: &Listing) -> u64 {
    listing
        .segments
        .keys()
        .map(|&id| reef_compactor::base_version(id))
        .filter(|&b| b < BASE_VERSION_MAX)
        .map(|b| b + 1)
        .max()
        .unwrap_or(0)
}

/// The WAL a `Loss` keeps: after `m0`, or, when a manifest is lost and the
/// WAL right after `m0` is a hole, after the hole (a lost manifest folded
/// it and GC collected it: cutting what follows would cut acknowledged
/// records that are still whole).
async fn loss_chain(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    m0: &Manifest,
    lost: &[(u64, String)],
    chain: Chain,
) -> Result<(Chain, Option<u64>)> {
    let after = m0.last_applied_lsn;
    let hole_at_start = matches!(&chain.broken_at, Some((at, _)) if *at == after + 1)
        && !listing.wal.contains_key(&(after + 1));
    let resume = listing.wal.range(after + 1..).next().map(|(&l, _)| l - 1);
    match resume {
        Some(resume) if hole_at_start && !lost.is_empty() => {
            let chain = scan::read_chain(store, layout, listing, resume, m0.last_version).await?;
            Ok((chain, Some(resume)))
        }
        _ => Ok((chain, None)),
    }
}

/// A pin and the version it names, if it decodes.
pub(crate) struct Judged {
    pub pin: Pin,
    pub pinned: Option<u64>,
}

/// Leases and checkpoints: unreadable ones, and those pinning a snapshot
/// that can no longer be read (its manifest unreadable or gone, or a
/// segment of it damaged), must go.
pub(crate) async fn judge_pins(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    manifests: &Manifests,
    segs: &mut SegmentCheck<'_>,
) -> Result<Vec<Judged>> {
    let mut out = Vec::new();
    let keys = listing
        .leases
        .values()
        .map(|k| (k, None))
        .chain(listing.checkpoints.iter().map(|(n, k)| (k, Some(n))));
    for (key, checkpoint) in keys {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        let decoded = match checkpoint {
            None => reef_format::Lease::decode(&obj.bytes, key)
                .map(|l| l.manifest_version)
                .map_err(|e| e.to_string()),
            Some(name) => match reef_format::Checkpoint::decode(&obj.bytes, key) {
                Ok(c) if &c.name != name => Err(format!("holds checkpoint {:?}", c.name)),
                Ok(c) => Ok(c.manifest_version),
                Err(e) => Err(e.to_string()),
            },
        };
        let (pinned, dead) = match decoded {
            Err(why) => (None, Some(why)),
            Ok(0) => (Some(0), None),
            Ok(v) => match manifests.decodable.get(&v) {
                None => (
                    Some(v),
                    Some(format!(
                        "pins manifest {v}, which cannot be read: snapshot lost"
                    )),
                ),
                Some(m) => (
                    Some(v),
                    segs.damaged_in(m).await?.first().map(|(s, why)| {
                        format!(
                            "pins manifest {v}, whose {} is damaged ({why}): snapshot lost",
                            layout.segment_key(s.id)
                        )
                    }),
                ),
            },
        };
        out.push(Judged {
            pin: Pin {
                key: key.clone(),
                bytes: obj.bytes,
                dead,
            },
            pinned,
        });
    }
    Ok(out)
}

/// The newest manifest (the empty one last) to roll back to with nothing
/// acknowledged lost, and the WAL chain after it. Only manifests at or
/// above the newest floor are compared against: one below it that reaches
/// further is a stale commit off the chain, which nobody adopted.
async fn rollback_target(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    manifests: &Manifests,
    lost: &[(u64, String)],
    segs: &mut SegmentCheck<'_>,
) -> Result<Option<(Manifest, Chain)>> {
    let floor = manifests
        .decodable
        .values()
        .map(|m| m.gc_floor)
        .max()
        .unwrap_or(0);
    let on_chain = || manifests.decodable.range(floor..).map(|(_, m)| m);
    let max_lsn = on_chain().map(|m| m.last_applied_lsn).max().unwrap_or(0);
    let max_version = on_chain().map(|m| m.last_version).max().unwrap_or(0);
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
        let covered = |_: u64, hi: u64| hi <= reach_version;
        // A lost manifest may have recorded segments whose WAL is gone:
        // any segment m does not list that holds newer versions than the
        // chain reaches (or cannot be read) may hold data only it had.
        if !lost.is_empty()
            && !segments_beyond(listing, m, &covered, segs)
                .await?
                .is_empty()
        {
            continue;
        }
        return Ok(Some((m.clone(), chain)));
    }
    Ok(None)
}

/// Listed segments `m` does not list whose version range (`lo`, `hi`) is
/// not `covered`, or that cannot be read.
async fn segments_beyond(
    listing: &Listing,
    m: &Manifest,
    covered: &dyn Fn(u64, u64) -> bool,
    segs: &mut SegmentCheck<'_>,
) -> Result<Vec<Beyond>> {
    let mut out = Vec::new();
    for (&id, (key, size)) in &listing.segments {
        if m.segments.iter().any(|s| s.id == id) {
            continue;
        }
        match segs.footer(id, *size).await? {
            Ok(f) if covered(f.min_version, f.max_version) => {}
            Ok(f) => out.push(Beyond {
                what: format!(
                    "{key}: versions {}..={}, ids {:?}..={:?}, {} entries",
                    f.min_version, f.max_version, f.min_id, f.max_id, f.entry_count
                ),
                max_version: Some(f.max_version),
                meta: Some(SegmentMeta::from_footer(id, 0, *size, &f)),
            }),
            Err(why) => out.push(Beyond {
                what: format!("{key}: unreadable ({why})"),
                max_version: None,
                meta: None,
            }),
        }
    }
    Ok(out)
}

/// Fills `report.losses` for a `Loss` target: exactly what is at stake.
fn losses(layout: &Layout, s: &Survey, report: &mut RepairReport) {
    let Target::Loss {
        damaged,
        beyond,
        chain,
        jump_to,
    } = &s.target
    else {
        return;
    };
    for (v, why) in &s.lost {
        report.losses.push(format!(
            "{}: {why}; whatever only it recorded is lost",
            layout.manifest_key(*v)
        ));
    }
    for seg in beyond {
        report.losses.push(if seg.meta.is_some() {
            format!(
                "{}: recorded only by a lost manifest; carried at level 0 (reads take the \
                 newest version of each id; a stale fold's stray entries cannot be told apart)",
                seg.what
            )
        } else {
            format!(
                "{}: recorded only by a lost manifest, and unreadable; left out",
                seg.what
            )
        });
    }
    if let Some(resume) = jump_to {
        report.losses.push(format!(
            "WAL LSNs {}..={resume}: folded by a lost manifest and collected; \
             what they wrote survives only in the segments carried above",
            s.m0.last_applied_lsn + 1
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
    if let Some((at, why)) = &chain.broken_at {
        report.losses.push(format!(
            "WAL after LSN {} is cut at {} ({why}): LSNs {at}..={} are lost",
            jump_to.unwrap_or(s.m0.last_applied_lsn),
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
