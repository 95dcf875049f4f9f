//! Carries out a repair plan, in the order the parent module gives and
//! argues: HEAD, the commit, quarantine (after HEAD is confirmed at the
//! commit), GC. In a dry run every step is described and none is taken.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use reef_compactor::{CompactorOptions, fold_records, new_segment_id, next_manifest};
use reef_format::{Head, Manifest, RECENT_WRITERS_MAX, WalRecord};
use reef_manifest::store::{DynStore, PutOutcome};
use reef_manifest::{Error as ManifestError, Layout, ManifestStore, Objects};

use super::scan::HeadState;
use super::{RepairOptions, RepairReport, Survey, Target};

/// Another process committed to the namespace while repair or rebuild
/// ran (exit 75: stop it, or let it finish, and run again).
#[derive(Debug)]
pub struct Raced(pub String);

impl std::fmt::Display for Raced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raced {}

fn step(report: &mut RepairReport, dry_run: bool, what: String) {
    report.steps.push(if dry_run {
        format!("would {what}")
    } else {
        what
    });
}

/// What the repair commit is built from.
pub(crate) struct Plan {
    /// The manifest to build on (damaged segments already removed).
    pub base: Manifest,
    /// WAL LSNs after `base` that a lost manifest folded and GC collected:
    /// the chain resumes after this LSN.
    pub jump_to: Option<u64>,
    /// The WAL records to fold (consecutive, after `jump_to` or `base`).
    pub records: Vec<WalRecord>,
    /// The WAL is cut from the first LSN up to the second.
    pub cut: Option<(u64, u64)>,
    /// `last_version` at least this (versions seen in what is left out).
    pub version_floor: u64,
    /// Carried segments are copied to fresh ids (see `copy_segments`).
    pub copy_segments: bool,
}

pub(super) async fn run(
    store: &DynStore,
    layout: &Layout,
    survey: Survey,
    opts: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let dry = opts.dry_run;
    let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
    fix_head(store, layout, &manifests, &survey, dry, report).await?;

    let needs_commit =
        !matches!(survey.target, Target::Keep) || !survey.manifests.unreadable.is_empty();
    let v = survey.next_version;
    let plan = needs_commit.then(|| plan(&survey));
    let listed_after: BTreeSet<u128> = plan
        .as_ref()
        .map_or(&survey.m0.segments, |p| &p.base.segments)
        .iter()
        .map(|s| s.id)
        .collect();
    let cut = plan.as_ref().and_then(|p| p.cut);

    // What goes to quarantine: nothing current reads it any more.
    let mut doomed: Vec<(String, String, Option<Bytes>)> = Vec::new();
    for (version, why) in &survey.manifests.unreadable {
        doomed.push((layout.manifest_key(*version), why.clone(), None));
    }
    for (id, why) in &survey.damaged_segments {
        if !listed_after.contains(id) && survey.listing.segments.contains_key(id) {
            doomed.push((layout.segment_key(*id), why.clone(), None));
        }
    }
    if let Some((at, top)) = cut {
        for lsn in (at..=top).filter(|l| survey.listing.wal.contains_key(l)) {
            doomed.push((layout.wal_key(lsn), "cut from the WAL".to_owned(), None));
        }
    }
    for pin in &survey.pins {
        if let Some(why) = &pin.dead {
            doomed.push((pin.key.clone(), why.clone(), Some(pin.bytes.clone())));
        }
    }
    // Copied first: once the commit lands, any GC may delete what it no
    // longer lists, and the evidence must already be safe.
    let mut copied = Vec::new();
    for (key, why, expected) in &doomed {
        step(report, dry, format!("quarantine {key} ({why})"));
        if !dry {
            copied.push(quarantine_copy(store, layout, key, expected.as_ref()).await?);
        }
    }

    if let Some(plan) = plan {
        step(report, dry, describe(&survey, &plan, v));
        if !dry {
            let next = build(store, layout, plan, v, opts).await?;
            check_reach(layout, &next, &survey)?;
            commit_gapless(&manifests, &next, survey.newest_listed + 1).await?;
            // The fence every deletion below relies on (as GC's).
            manifests.ensure_head_at_least(v).await?;
            report.committed = Some(v);
        }
    }

    for ((key, _, _), copy) in doomed.iter().zip(copied) {
        let removed = match copy {
            Some(bytes) => quarantine_delete(store, key, &bytes).await?,
            None => true,
        };
        if !removed {
            report
                .steps
                .push(format!("left {key}: it changed since repair read it"));
        }
    }

    step(
        report,
        dry,
        format!(
            "run GC (grace {})",
            humantime::format_duration(std::time::Duration::from_millis(opts.gc_grace_ms))
        ),
    );
    if !dry {
        let gc = reef_compactor::gc(store, layout, &compactor_options(opts)).await?;
        report.steps.push(format!(
            "GC deleted {} WAL, {} segments, {} manifests, {} expired leases",
            gc.wal, gc.segments, gc.manifests, gc.leases
        ));
    }
    Ok(())
}

fn plan(survey: &Survey) -> Plan {
    let lost = !survey.lost.is_empty();
    match &survey.target {
        Target::Keep => Plan {
            base: survey.m0.clone(),
            jump_to: None,
            records: Vec::new(),
            cut: None,
            version_floor: 0,
            copy_segments: false,
        },
        Target::Rollback { base, chain } => Plan {
            base: base.clone(),
            jump_to: None,
            records: chain.good.clone(),
            cut: None,
            version_floor: 0,
            copy_segments: lost || base.version != survey.m0.version,
        },
        Target::Loss {
            damaged,
            beyond,
            chain,
            jump_to,
        } => {
            let mut base = survey.m0.clone();
            for (seg, _) in damaged {
                base.segments.retain(|s| s.id != seg.id);
                base.totals.dropped = base.totals.dropped.add(&seg.setsum);
                base.totals.dropped_count += seg.entry_count;
            }
            // Intact segments only a lost manifest recorded are data
            // nothing else holds: carried (the union argument of
            // `rebuild`), not left for GC.
            for seg in beyond.iter().filter_map(|b| b.meta.as_ref()) {
                base.totals.written = base.totals.written.add(&seg.setsum);
                base.totals.written_count += seg.entry_count;
                base.segments.push(seg.clone());
            }
            Plan {
                base,
                jump_to: *jump_to,
                records: chain.good.clone(),
                cut: chain.broken_at.as_ref().map(|(at, _)| (*at, chain.top)),
                version_floor: beyond
                    .iter()
                    .filter_map(|b| b.max_version)
                    .chain(chain.max_version())
                    .max()
                    .unwrap_or(0),
                copy_segments: lost,
            }
        }
    }
}

fn describe(survey: &Survey, plan: &Plan, v: u64) -> String {
    let mut what = format!(
        "commit manifest {v} built on manifest {} ({} segments{})",
        plan.base.version,
        plan.base.segments.len(),
        if plan.copy_segments {
            ", each copied to a fresh id"
        } else {
            ""
        }
    );
    if v > survey.newest_listed + 1 {
        what.push_str(&format!(
            " (and the same at {}..={} first, so every version slot up to it is taken)",
            survey.newest_listed + 1,
            v - 1
        ));
    }
    if let Some(resume) = plan.jump_to {
        what.push_str(&format!(
            ", LSNs {}..={resume} recorded as folded",
            plan.base.last_applied_lsn + 1
        ));
    }
    if let (Some(first), Some(last)) = (plan.records.first(), plan.records.last()) {
        what.push_str(&format!(
            ", folding WAL LSNs {}..={} into one level-0 segment",
            first.lsn, last.lsn
        ));
    }
    if let Some((at, top)) = plan.cut {
        what.push_str(&format!(", recording LSNs {at}..={top} as cut"));
    }
    what.push_str(&format!(", GC floor {v}"));
    what
}

pub(crate) fn compactor_options(opts: &RepairOptions) -> CompactorOptions {
    CompactorOptions {
        gc_grace_ms: opts.gc_grace_ms,
        clock: Arc::clone(&opts.clock),
        rng: Arc::clone(&opts.rng),
        ..CompactorOptions::default()
    }
}

async fn fix_head(
    store: &DynStore,
    layout: &Layout,
    manifests: &ManifestStore,
    survey: &Survey,
    dry: bool,
    report: &mut RepairReport,
) -> Result<()> {
    let key = layout.head_key();
    let newest = survey.listing.manifests.keys().next_back().copied();
    match (&survey.head, newest) {
        (HeadState::Unreadable { tag, why }, Some(n)) => {
            step(
                report,
                dry,
                format!("replace {key} ({why}) with one naming manifest {n}"),
            );
            if !dry {
                let bytes = Head {
                    manifest_version: n,
                }
                .encode()?
                .into();
                // Lost to a concurrent replacement: that one decodes.
                let _ = store.put_if_match(&key, bytes, tag).await?;
            }
        }
        (HeadState::Unreadable { why, .. }, None) => {
            step(
                report,
                dry,
                format!("quarantine {key} ({why}; no manifest exists)"),
            );
            if !dry {
                quarantine(store, layout, &key).await?;
            }
        }
        (HeadState::Missing, Some(n)) => {
            step(report, dry, format!("create {key} naming manifest {n}"));
            if !dry {
                manifests.advance_head(n).await?;
            }
        }
        (HeadState::Names { version }, Some(n)) if *version < n => {
            step(
                report,
                dry,
                format!("move {key} from manifest {version} to {n}"),
            );
            if !dry {
                manifests.advance_head(n).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The repair (or rebuild) commit: `plan.base` plus the folded records,
/// at version `v` with the GC floor at `v`.
pub(crate) async fn build(
    store: &DynStore,
    layout: &Layout,
    mut plan: Plan,
    v: u64,
    opts: &RepairOptions,
) -> Result<Manifest> {
    let copts = compactor_options(opts);
    if plan.copy_segments {
        copy_segments(store, layout, &mut plan.base, v, &copts).await?;
    }
    if let Some(resume) = plan.jump_to {
        jump(&mut plan.base, resume);
    }
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let (change, _) = fold_records(&objects, &plan.base, &plan.records, &copts, v).await?;
    let mut next = next_manifest(
        &plan.base,
        &change,
        opts.clock.now_ms(),
        copts.idempotency_retention_ms,
    );
    next.version = v;
    next.gc_floor = v;
    next.last_version = next.last_version.max(plan.version_floor);
    if let Some((_, top)) = plan.cut {
        jump(&mut next, top);
    }
    next.check_accounting(&layout.manifest_key(v))?;
    Ok(next)
}

/// Records LSNs `(m.last_applied_lsn, to]` as folded by no writer (id 0,
/// which no writer draws): a writer whose record sat there and was not
/// yet acknowledged sees another's and re-plans it (`FoldedOthers`).
fn jump(m: &mut Manifest, to: u64) {
    let skipped = to.saturating_sub(m.last_applied_lsn);
    let skipped = usize::try_from(skipped)
        .unwrap_or(usize::MAX)
        .min(RECENT_WRITERS_MAX);
    m.recent_writers.extend(std::iter::repeat_n(0, skipped));
    let excess = m.recent_writers.len().saturating_sub(RECENT_WRITERS_MAX);
    m.recent_writers.drain(..excess);
    m.last_applied_lsn = m.last_applied_lsn.max(to);
}

/// Copies every segment `base` lists to a fresh id based on `v`. A GC that
/// loaded a manifest before it was lost or rolled back may already have
/// decided to delete a segment the repair brings back; a new id is one no
/// GC has listed, and its base `v` is at the new floor.
async fn copy_segments(
    store: &DynStore,
    layout: &Layout,
    base: &mut Manifest,
    v: u64,
    copts: &CompactorOptions,
) -> Result<()> {
    for seg in &mut base.segments {
        let from = layout.segment_key(seg.id);
        let obj = store
            .get(&from)
            .await?
            .with_context(|| format!("{from} vanished while repair copied it"))?;
        let id = new_segment_id(copts.rng.as_ref(), v);
        let to = layout.segment_key(id);
        if let PutOutcome::ConditionFailed = store.put_if_absent(&to, obj.bytes).await? {
            bail!("{to} already exists: a segment id was drawn twice");
        }
        seg.id = id;
    }
    Ok(())
}

/// Commits `next` at every version from `from` to `next.version`, each by
/// put-if-absent with the floor at its own version: every slot up to the
/// repair's is then taken, so a process that committed to the namespace
/// since the survey collides instead of being passed over.
pub(crate) async fn commit_gapless(
    manifests: &ManifestStore,
    next: &Manifest,
    from: u64,
) -> Result<()> {
    let v = next.version;
    if from > v {
        bail!(
            "bug: repair would commit {} below the newest listed version {}",
            manifests.layout().manifest_key(v),
            from - 1
        );
    }
    for version in from..=v {
        let mut m = next.clone();
        m.version = version;
        m.gc_floor = version;
        match manifests.commit(&m).await {
            Ok(_) => {}
            Err(ManifestError::ManifestConflict { .. }) => {
                return Err(Raced(format!(
                    "{} appeared while repair ran: something is committing to {}; \
                     stop it (or let it finish) and run repair again",
                    manifests.layout().manifest_key(version),
                    manifests.layout().namespace()
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The commit must reach at least as far as every manifest on the chain
/// anyone could have adopted (M1): a live engine adopting it never goes
/// backwards. (A manifest below the newest floor that reaches further is
/// a stale commit off the chain: nobody adopted it.)
fn check_reach(layout: &Layout, next: &Manifest, survey: &Survey) -> Result<()> {
    let floor = survey
        .manifests
        .decodable
        .values()
        .map(|m| m.gc_floor)
        .max()
        .unwrap_or(0);
    for m in survey.manifests.decodable.range(floor..).map(|(_, m)| m) {
        if next.last_applied_lsn < m.last_applied_lsn || next.last_version < m.last_version {
            bail!(
                "bug: the repair commit for {} would fold less than {} (LSN {} < {} or version {} < {})",
                layout.namespace(),
                layout.manifest_key(m.version),
                next.last_applied_lsn,
                m.last_applied_lsn,
                next.last_version,
                m.last_version
            );
        }
    }
    Ok(())
}

/// Copies `key` below `quarantine/` (a free name: `.1`, `.2`… after a
/// first repair) and returns the bytes copied; `None` if it is gone, or no
/// longer holds `expected` (a checkpoint re-created since is left alone).
pub(crate) async fn quarantine_copy(
    store: &DynStore,
    layout: &Layout,
    key: &str,
    expected: Option<&Bytes>,
) -> Result<Option<Bytes>> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    if expected.is_some_and(|b| *b != obj.bytes) {
        return Ok(None);
    }
    let base = layout
        .quarantine_key(key)
        .with_context(|| format!("{key} is outside namespace {}", layout.namespace()))?;
    for n in 0..100 {
        let target = if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        };
        if let PutOutcome::Written(_) = store.put_if_absent(&target, obj.bytes.clone()).await? {
            return Ok(Some(obj.bytes));
        }
    }
    bail!("{base} and 99 more names are taken: clean up quarantine/ first")
}

/// Deletes `key` if it still holds `copied` (its quarantined bytes).
/// Returns false if it changed (the window between this read and the
/// delete remains, as for every checkpoint delete: docs/architecture.md).
pub(crate) async fn quarantine_delete(store: &DynStore, key: &str, copied: &Bytes) -> Result<bool> {
    match store.get(key).await? {
        Some(obj) if obj.bytes == *copied => {
            store.delete(key).await?;
            Ok(true)
        }
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

/// Both steps at once, for objects no commit has to wait for (an
/// unreadable HEAD before the commit creates a new one).
pub(crate) async fn quarantine(store: &DynStore, layout: &Layout, key: &str) -> Result<()> {
    if let Some(bytes) = quarantine_copy(store, layout, key, None).await? {
        quarantine_delete(store, key, &bytes).await?;
    }
    Ok(())
}
