//! Garbage collection: deletes what no one can read any more, with no step
//! whose safety depends on a clock, a bounded pause or another process's
//! settings. (The grace period only decides *when* GC raises the floor:
//! a wrong clock costs some in-flight operations their commit, never data.)
//!
//! One pass:
//! 1. Load the current manifest C and make sure HEAD names C or later.
//! 2. Delete WAL objects with `lsn <= C.last_applied_lsn`. A writer reads
//!    HEAD after its WAL put lands and before acknowledging; if GC freed
//!    its slot, HEAD already named C, so the writer sees `lsn` folded and
//!    does not acknowledge (the stale-writer fence, DESIGN §3.2).
//! 3. Maybe raise the GC floor to F, the newest version superseded at
//!    least `gc_grace_ms` ago, by committing a manifest through the normal
//!    commit chain, when that frees something.
//! 4. List segments; then load the current manifest N (its floor F* is
//!    what counts); then list pins. The order is the argument:
//!    - a segment listed but referenced by neither N (held in memory, as
//!      a concurrent GC may already have deleted it), nor any manifest
//!      `>= F*` still readable, nor a pinned one, and whose operation was
//!      based below F*, can never become referenced: a manifest newer
//!      than N carries forward only N's segments and adds outputs of
//!      operations based at or above the floor (`commit_change` refuses
//!      the others);
//!    - a lease or checkpoint on `v < F*` was either placed before the pin
//!      listing (GC sees it and keeps `v`) or its holder's check, which
//!      reads the current manifest after placing the pin, sees the floor
//!      and withdraws it.
//! 5. Delete manifest versions below F* that no pin names, then those
//!    segments, then expired leases.
//!
//! GC's own commit rebases over anything; several GC runs may overlap
//! (deleting a deleted object succeeds), and a crash at any point leaves
//! only objects the next run deletes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use reef_format::Manifest;
use reef_manifest::store::DynStore;
use reef_manifest::{Layout, ManifestStore, Objects, Pins};

use crate::commit::{Change, Outcome, commit_change};
use crate::error::Result;
use crate::ids::base_version;
use crate::options::CompactorOptions;

/// What a GC run deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// WAL objects deleted.
    pub wal: usize,
    /// Segments deleted.
    pub segments: usize,
    /// Manifest versions deleted.
    pub manifests: usize,
    /// Expired leases deleted.
    pub leases: usize,
    /// The GC floor in force when this run deleted.
    pub floor: u64,
    /// The version this run committed to raise the floor, if it did.
    pub floor_raised_by: Option<u64>,
    /// Manifest versions kept.
    pub kept_manifests: Vec<u64>,
}

/// Deletes one kind's keys in one batch (a local directory syncs once per
/// batch, not once per object: `ObjectStore::delete_many`); how many.
async fn delete_batch(store: &DynStore, keys: impl Iterator<Item = String>) -> Result<usize> {
    let keys: Vec<String> = keys.collect();
    store.delete_many(&keys).await?;
    Ok(keys.len())
}

/// Runs one GC pass over a namespace.
#[tracing::instrument(name = "gc", skip_all, fields(namespace = layout.namespace()))]
pub async fn gc(store: &DynStore, layout: &Layout, opts: &CompactorOptions) -> Result<GcReport> {
    let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let pins = Pins::new(
        Arc::clone(store),
        layout.clone(),
        Arc::clone(&opts.clock),
        Arc::clone(&opts.rng),
    );
    let mut report = GcReport::default();
    let Some(current) = manifests.load_current().await? else {
        return Ok(report);
    };
    if !opts.sabotage.gc_skips_head_fence {
        manifests.ensure_head_at_least(current.version).await?;
    }

    let folded_wal = objects
        .list_wal(0)
        .await?
        .into_iter()
        .take_while(|l| *l <= current.last_applied_lsn)
        .map(|lsn| layout.wal_key(lsn));
    report.wal = delete_batch(store, folded_wal).await?;

    let listed = objects.list_segments().await?;
    let mut loaded = load_range(&manifests, current.gc_floor, &current).await?;
    let target = floor_target(&loaded, &current, opts);
    if raising_frees_something(
        &loaded,
        &listed,
        &pins.pins().await?.versions,
        &current,
        target,
    ) && let Outcome::Committed(m, _) = commit_change(
        &manifests,
        current.clone(),
        &Change::RaiseFloor { floor: target },
        opts,
    )
    .await?
    {
        report.floor_raised_by = Some(m.version);
    }

    // Everything below is decided by a manifest loaded after the segment
    // listing, and pins listed after that manifest (see the module doc).
    let now = manifests.load_current().await?.unwrap_or(current);
    manifests.ensure_head_at_least(now.version).await?;
    let pinned = pins.pins().await?;
    let floor = now.gc_floor;
    report.floor = floor;
    loaded.retain(|v, _| *v >= floor);
    // N itself is in hand: count it even if a GC with a higher floor has
    // deleted it from the bucket since (newer manifests carry its
    // segments forward; found by the simulation).
    loaded.insert(now.version, now.clone());
    for v in (floor..=now.version).chain(pinned.versions.iter().copied()) {
        if !loaded.contains_key(&v)
            && let Some(m) = manifests.load(v).await?
        {
            loaded.insert(v, m);
        }
    }
    let reachable: HashSet<u128> = loaded
        .values()
        .flat_map(|m| m.segments.iter().map(|s| s.id))
        .collect();

    let old_manifests = manifests
        .list_versions()
        .await?
        .into_iter()
        .filter(|v| *v < floor && !pinned.versions.contains(v))
        .map(|v| layout.manifest_key(v));
    report.manifests = delete_batch(store, old_manifests).await?;
    let unreachable = listed
        .into_iter()
        .filter(|id| !reachable.contains(id) && base_version(*id) < floor)
        .map(|id| layout.segment_key(id));
    report.segments = delete_batch(store, unreachable).await?;
    let expired = pinned.expired_leases.iter().map(|id| layout.lease_key(id));
    report.leases = delete_batch(store, expired).await?;
    // A checkpoint whose manifest is gone (a put that landed after its
    // creator withdrew or gave up) pins nothing; it is left alone: GC
    // deletes by name, and a delete that lands late could remove a newer
    // checkpoint of the same name.
    report.kept_manifests = loaded.keys().copied().collect();
    tracing::info!(
        wal = report.wal,
        segments = report.segments,
        manifests = report.manifests,
        leases = report.leases,
        floor = report.floor,
        "collected"
    );
    Ok(report)
}

/// Manifests `from..=current.version` that still exist (GC never deletes
/// at or above the floor it read, but an overlapping GC with a newer floor
/// may have).
async fn load_range(
    manifests: &ManifestStore,
    from: u64,
    current: &Manifest,
) -> Result<BTreeMap<u64, Manifest>> {
    let mut loaded = BTreeMap::new();
    for v in from..current.version {
        if let Some(m) = manifests.load(v).await? {
            loaded.insert(v, m);
        }
    }
    loaded.insert(current.version, current.clone());
    Ok(loaded)
}

/// The floor to aim for: versions below it were superseded at least
/// `gc_grace_ms` ago by GC's clock. If even the current version is that
/// old, everything up to the raise's own commit (the current version's
/// segments live on in it). Never below the floor. Clocks only make this
/// more or less eager: an operation based below the floor loses its
/// commit, no data is at stake.
fn floor_target(
    loaded: &BTreeMap<u64, Manifest>,
    current: &Manifest,
    opts: &CompactorOptions,
) -> u64 {
    let now = opts.clock.now_ms();
    let old = |m: &Manifest| m.created_at_ms.saturating_add(opts.gc_grace_ms) <= now;
    if old(current) {
        return current.version + 1;
    }
    loaded
        .iter()
        .filter(|(_, m)| old(m))
        .map(|(v, _)| *v)
        .max()
        .unwrap_or(0)
        .max(current.gc_floor)
}

/// Whether raising the floor to `target` lets GC delete something: an
/// unpinned manifest version other than the current one (whose segments
/// the raise carries on), or an unreferenced segment written by an
/// operation based in `[floor, target)`. Nothing to delete, no commit: an
/// idle namespace gets no new versions from GC.
fn raising_frees_something(
    loaded: &BTreeMap<u64, Manifest>,
    listed: &[u128],
    pinned: &[u64],
    current: &Manifest,
    target: u64,
) -> bool {
    if target <= current.gc_floor {
        return false;
    }
    let versions = loaded
        .keys()
        .any(|v| *v < target && *v != current.version && !pinned.contains(v));
    let referenced: HashSet<u128> = loaded
        .values()
        .flat_map(|m| m.segments.iter().map(|s| s.id))
        .collect();
    let orphans = listed.iter().any(|id| {
        !referenced.contains(id) && (current.gc_floor..target).contains(&base_version(*id))
    });
    versions || orphans
}
