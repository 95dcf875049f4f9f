//! `reef rebuild`: a new manifest from the segments and WAL found in the
//! bucket, for a namespace none of whose manifests can be read (deleted,
//! or all damaged). `reef repair` is the tool while one still decodes.
//!
//! What it chooses, and why:
//! - **Segments: every intact one**, each read whole and checked (blocks,
//!   footer, the entries against the footer's setsum), all at level 0.
//!   Without a manifest nothing says which segments a compaction replaced;
//!   but segments are immutable and every entry carries its version, so
//!   the union holds, per id, the newest version any of them ever held, and
//!   reads take the newest (a superseded compaction input only repeats
//!   entries its output also has). Level 0 may overlap, so no level
//!   invariant is claimed that the set might break; the next compaction
//!   merges them into level 1 and drops the repeats. Two segments with the
//!   same entries (a retried fold) are used once.
//! - **WAL**: records whose versions all lie at or below the newest
//!   segment version were folded; `last_applied_lsn` is the last of them
//!   (or the LSN before the first unfolded one). The records after it
//!   must form a clean chain; a break cuts it there, and the cut records
//!   are reported and quarantined (as `repair --accept-data-loss` does).
//! - **The commit**: version V, one past every version listed or named by
//!   HEAD, a lease, a checkpoint or a segment id (its operation's base),
//!   by put-if-absent, with `gc_floor = V` so that nothing based on an
//!   older version commits after it. Totals restart from the segments
//!   (`written = live`, nothing dropped).
//!
//! What is lost with the manifests and cannot come back: the idempotency
//! records (a retry of an old request is applied again) and the window of
//! recent writers (a writer whose fence runs across the rebuild gets
//! `Fenced`, outcome unknown). Segments a crashed GC left half-deleted can
//! bring back an older version of an id whose deletion was compacted
//! away; rebuild reports every segment it used so an operator can judge.
//! Run it with writers and compactors stopped: it has to be sure nothing
//! else is committing.

use std::sync::Arc;

use anyhow::{Result, bail};
use reef_format::segment::Segment;
use reef_format::{Checkpoint, Lease, Manifest, SegmentMeta, Totals};
use reef_manifest::store::DynStore;
use reef_manifest::{Error as ManifestError, Layout, ManifestStore};

use crate::repair::scan::{self, HeadState};
use crate::repair::{RepairOptions, build, dead_pins, quarantine};
use crate::verify::list;

/// What a rebuild did (or, in a dry run, would do).
#[derive(Clone, Debug, Default)]
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
    let listing = list(store, &layout).await?;
    let found = scan::read_manifests(store, &listing).await?;
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

    // Segments: every intact one, once.
    let mut segments: Vec<SegmentMeta> = Vec::new();
    let mut doomed: Vec<(String, String)> = Vec::new();
    for (&id, (key, size)) in &listing.segments {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        let checked = Segment::open(obj.bytes, key).and_then(|s| s.verify().map(|()| s));
        let seg = match checked {
            Ok(seg) => seg,
            Err(e) => {
                report.skipped.push(format!("{key}: {e}"));
                doomed.push((key.clone(), e.to_string()));
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
            "{key}: ids {:?}..={:?}, versions {}..={}, {} entries",
            meta.min_id, meta.max_id, meta.min_version, meta.max_version, meta.entry_count
        ));
        segments.push(meta);
    }
    segments.sort_by_key(|s| (s.max_version, s.id));
    let seg_version = segments.iter().map(|s| s.max_version).max().unwrap_or(0);

    // WAL: folded up to the last record the segments cover.
    let mut lal = 0;
    for (&lsn, key) in &listing.wal {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match reef_format::WalRecord::decode(&obj.bytes, key) {
            Ok(r) if r.lsn == lsn && r.entries().all(|e| e.version <= seg_version) => lal = lsn,
            _ => break,
        }
    }
    if lal == 0
        && let Some((&first, _)) = listing.wal.iter().next()
    {
        lal = first - 1;
    }
    let chain = scan::read_chain(store, &layout, &listing, lal, seg_version).await?;
    if let Some(first) = chain.good.first() {
        report.used.push(format!(
            "WAL LSNs {}..={}: {}",
            first.lsn,
            chain.good_end(lal),
            if chain.broken_at.is_some() {
                "folded into a new level-0 segment"
            } else {
                "unfolded, replayed by readers"
            }
        ));
    }
    let mut cut = None;
    if let Some((at, why)) = &chain.broken_at {
        report.skipped.push(format!(
            "WAL LSNs {at}..={}: the chain breaks at {} ({why}); cut there",
            chain.top,
            layout.wal_key(*at)
        ));
        for lsn in (*at..=chain.top).filter(|l| listing.wal.contains_key(l)) {
            doomed.push((layout.wal_key(lsn), "cut from the WAL".to_owned()));
        }
        cut = Some((*at, chain.top));
    }

    let version = next_version(store, &layout, &listing, found.unreadable.keys().copied()).await?;
    let live = segments
        .iter()
        .fold(reef_format::Setsum::EMPTY, |s, seg| s.add(&seg.setsum));
    let mut base = Manifest {
        version: version - 1,
        last_applied_lsn: lal,
        last_version: seg_version,
        totals: Totals {
            written: live,
            written_count: segments.iter().map(|s| s.entry_count).sum(),
            ..Totals::default()
        },
        segments,
        ..Manifest::default()
    };
    // A cut folds the good run before it (the manifest cannot call the
    // cut folded while the run before it is not); otherwise the run stays
    // unfolded and readers replay it.
    let records = if cut.is_some() { &chain.good[..] } else { &[] };
    let manifest = if dry_run {
        base.version = version;
        base
    } else {
        build(
            store, &layout, &mut base, records, cut, &chain, version, opts,
        )
        .await?
    };
    let key = layout.manifest_key(version);
    say(
        &mut report,
        format!(
            "commit {key}: {} segments, last_applied_lsn {}, last_version {}, GC floor {version}",
            manifest.segments.len(),
            manifest.last_applied_lsn,
            manifest.last_version
        ),
    );
    if let HeadState::Unreadable { why, .. } = scan::read_head(store, &layout).await? {
        doomed.insert(0, (layout.head_key(), why));
    }
    for (version, why) in &found.unreadable {
        doomed.push((layout.manifest_key(*version), why.clone()));
    }
    doomed.extend(dead_pins(store, &layout, &listing, &found.decodable).await?);
    if !dry_run {
        // An unreadable HEAD goes first, so the commit can create one.
        if doomed.first().is_some_and(|(k, _)| *k == layout.head_key()) {
            quarantine(store, &layout, &layout.head_key()).await?;
        }
        let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
        match manifests.commit(&manifest).await {
            Ok(_) => {}
            Err(ManifestError::ManifestConflict { .. }) => bail!(
                "{key} appeared while rebuild ran: something is committing to {ns}; stop it and \
                 run `reef repair {ns}`"
            ),
            Err(e) => return Err(e.into()),
        }
        manifests.ensure_head_at_least(version).await?;
        report.committed = Some(version);
    }
    for (k, why) in doomed {
        say(&mut report, format!("quarantine {k} ({why})"));
        if !dry_run && k != layout.head_key() {
            quarantine(store, &layout, &k).await?;
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

/// One past every version listed, named by HEAD, pinned, or carried in a
/// segment id (an operation's base version: the chain reached it), so the
/// new manifest lands past every version a stale process may hold.
async fn next_version(
    store: &DynStore,
    layout: &Layout,
    listing: &crate::verify::Listing,
    listed: impl Iterator<Item = u64>,
) -> Result<u64> {
    let mut top = listed.max().unwrap_or(0);
    for &id in listing.segments.keys() {
        top = top.max(reef_compactor::base_version(id).saturating_add(1));
    }
    if let HeadState::Names { version } = scan::read_head(store, layout).await? {
        top = top.max(version);
    }
    for key in listing.leases.values().chain(listing.checkpoints.values()) {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        if let Ok(l) = Lease::decode(&obj.bytes, key) {
            top = top.max(l.manifest_version);
        } else if let Ok(c) = Checkpoint::decode(&obj.bytes, key) {
            top = top.max(c.manifest_version);
        }
    }
    Ok(top + 1)
}
