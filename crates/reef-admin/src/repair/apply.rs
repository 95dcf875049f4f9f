//! Carries out a repair plan, in the order the parent module gives and
//! argues: HEAD, the one commit, quarantine (after HEAD is confirmed at the
//! commit), GC. In a dry run every step is described and none is taken.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use reef_compactor::{CompactorOptions, fold_records, next_manifest};
use reef_format::{Checkpoint, Head, Lease, Manifest, RECENT_WRITERS_MAX};
use reef_manifest::store::{DynStore, PutOutcome};
use reef_manifest::{Error as ManifestError, Layout, ManifestStore, Objects};

use super::scan::{HeadState, SegmentCheck};
use super::{RepairOptions, RepairReport, Survey, Target};

fn step(report: &mut RepairReport, dry_run: bool, what: String) {
    report.steps.push(if dry_run {
        format!("would {what}")
    } else {
        what
    });
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

    let Survey {
        listing,
        manifests: found,
        m0,
        m0_chain,
        next_version: v,
        target,
        damaged_segments,
        ..
    } = survey;
    let needs_commit = !matches!(target, Target::Keep) || !found.unreadable.is_empty();
    let mut cut: Option<(u64, u64)> = None;
    let mut listed_after: BTreeSet<u128> = m0.segments.iter().map(|s| s.id).collect();
    if needs_commit {
        let (mut base, records) = match target {
            Target::Keep => (m0.clone(), Vec::new()),
            Target::Rollback { base, chain } => (base, chain.good),
            Target::Loss { damaged, .. } => {
                let mut base = m0.clone();
                for (seg, _) in &damaged {
                    base.segments.retain(|s| s.id != seg.id);
                    base.totals.dropped = base.totals.dropped.add(&seg.setsum);
                    base.totals.dropped_count += seg.entry_count;
                }
                cut = m0_chain
                    .broken_at
                    .as_ref()
                    .map(|(at, _)| (*at, m0_chain.top));
                (base, m0_chain.good.clone())
            }
        };
        let what = describe_commit(v, &base, &records, cut);
        step(report, dry, what);
        if !dry {
            let next = build(store, layout, &mut base, &records, cut, &m0_chain, v, opts).await?;
            check_reach(layout, &next, &found.decodable)?;
            listed_after = next.segments.iter().map(|s| s.id).collect();
            match manifests.commit(&next).await {
                Ok(_) => {}
                Err(ManifestError::ManifestConflict { .. }) => bail!(
                    "{} appeared while repair ran: something is committing to {}; \
                     stop it (or let it finish) and run repair again",
                    layout.manifest_key(v),
                    layout.namespace()
                ),
                Err(e) => return Err(e.into()),
            }
            // The fence every deletion below relies on (as GC's).
            manifests.ensure_head_at_least(v).await?;
            report.committed = Some(v);
        }
    }

    // Quarantine what nothing current reads any more.
    let mut doomed: Vec<(String, String)> = Vec::new();
    for (version, why) in &found.unreadable {
        doomed.push((layout.manifest_key(*version), why.clone()));
    }
    for (id, why) in &damaged_segments {
        if !listed_after.contains(id) && listing.segments.contains_key(id) {
            doomed.push((layout.segment_key(*id), why.clone()));
        }
    }
    if let Some((at, top)) = cut {
        for lsn in (at..=top).filter(|l| listing.wal.contains_key(l)) {
            doomed.push((layout.wal_key(lsn), "cut from the WAL".to_owned()));
        }
    }
    doomed.extend(dead_pins(store, layout, &listing, &found.decodable).await?);
    for (key, why) in doomed {
        step(report, dry, format!("quarantine {key} ({why})"));
        if !dry {
            quarantine(store, layout, &key).await?;
        }
    }

    step(
        report,
        dry,
        format!("run GC (grace {} s)", opts.gc_grace_ms / 1000),
    );
    if !dry {
        let copts = compactor_options(opts);
        let gc = reef_compactor::gc(store, layout, &copts).await?;
        report.steps.push(format!(
            "GC deleted {} WAL, {} segments, {} manifests, {} expired leases",
            gc.wal, gc.segments, gc.manifests, gc.leases
        ));
    }
    Ok(())
}

fn compactor_options(opts: &RepairOptions) -> CompactorOptions {
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

fn describe_commit(
    v: u64,
    base: &Manifest,
    records: &[reef_format::WalRecord],
    cut: Option<(u64, u64)>,
) -> String {
    let mut what = format!(
        "commit manifest {v} built on manifest {} ({} segments)",
        base.version,
        base.segments.len()
    );
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        what.push_str(&format!(
            ", folding WAL LSNs {}..={} into one level-0 segment",
            first.lsn, last.lsn
        ));
    }
    if let Some((at, top)) = cut {
        what.push_str(&format!(", recording LSNs {at}..={top} as cut"));
    }
    what.push_str(&format!(", GC floor {v}"));
    what
}

/// The repair commit (see the parent module, step 3).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn build(
    store: &DynStore,
    layout: &Layout,
    base: &mut Manifest,
    records: &[reef_format::WalRecord],
    cut: Option<(u64, u64)>,
    chain: &super::scan::Chain,
    v: u64,
    opts: &RepairOptions,
) -> Result<Manifest> {
    let copts = compactor_options(opts);
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let (change, _) = fold_records(&objects, base, records, &copts, v).await?;
    let mut next = next_manifest(
        base,
        &change,
        opts.clock.now_ms(),
        copts.idempotency_retention_ms,
    );
    next.version = v;
    next.gc_floor = v;
    if let Some((_, top)) = cut {
        let skipped = top.saturating_sub(next.last_applied_lsn);
        next.last_applied_lsn = top;
        // Writer id 0 is no writer's: a writer whose record sat in a cut
        // slot and was not yet acknowledged re-plans it.
        let skipped = usize::try_from(skipped)
            .unwrap_or(usize::MAX)
            .min(RECENT_WRITERS_MAX);
        next.recent_writers.extend(std::iter::repeat_n(0, skipped));
        let excess = next.recent_writers.len().saturating_sub(RECENT_WRITERS_MAX);
        next.recent_writers.drain(..excess);
        next.last_version = next.last_version.max(chain.max_version().unwrap_or(0));
    }
    next.check_accounting(&layout.manifest_key(v))?;
    Ok(next)
}

/// The commit must reach at least as far as every manifest anyone could
/// have adopted (M1): a live engine adopting it never goes backwards.
fn check_reach(
    layout: &Layout,
    next: &Manifest,
    decodable: &std::collections::BTreeMap<u64, Manifest>,
) -> Result<()> {
    for m in decodable.values() {
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

/// Leases and checkpoints that cannot be read, or pin a snapshot that can
/// no longer be read (its manifest unreadable or gone, or a segment of it
/// damaged), with why.
pub(crate) async fn dead_pins(
    store: &DynStore,
    layout: &Layout,
    listing: &crate::verify::Listing,
    decodable: &std::collections::BTreeMap<u64, Manifest>,
) -> Result<Vec<(String, String)>> {
    let mut segs = SegmentCheck::new(store, layout, listing);
    let mut out = Vec::new();
    let mut pinned = Vec::new();
    for key in listing.leases.values() {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match Lease::decode(&obj.bytes, key) {
            Ok(l) => pinned.push((key.clone(), l.manifest_version)),
            Err(e) => out.push((key.clone(), e.to_string())),
        }
    }
    for (name, key) in &listing.checkpoints {
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match Checkpoint::decode(&obj.bytes, key) {
            Ok(c) if &c.name != name => {
                out.push((key.clone(), format!("holds checkpoint {:?}", c.name)))
            }
            Ok(c) => pinned.push((key.clone(), c.manifest_version)),
            Err(e) => out.push((key.clone(), e.to_string())),
        }
    }
    for (key, version) in pinned {
        if version == 0 {
            continue;
        }
        let why = match decodable.get(&version) {
            None => Some(format!(
                "pins manifest {version}, which cannot be read: snapshot lost"
            )),
            Some(m) => segs.damaged_in(m).await?.first().map(|(s, why)| {
                format!(
                    "pins manifest {version}, whose {} is damaged ({why}): snapshot lost",
                    layout.segment_key(s.id)
                )
            }),
        };
        if let Some(why) = why {
            out.push((key, why));
        }
    }
    Ok(out)
}

/// Copies `key` below `quarantine/` (a free name: `.1`, `.2`… after a
/// first repair) and deletes it. Gone already: nothing to do.
pub(crate) async fn quarantine(store: &DynStore, layout: &Layout, key: &str) -> Result<()> {
    let Some(obj) = store.get(key).await? else {
        return Ok(());
    };
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
            store.delete(key).await?;
            return Ok(());
        }
    }
    bail!("{base} and 99 more names are taken: clean up quarantine/ first")
}
