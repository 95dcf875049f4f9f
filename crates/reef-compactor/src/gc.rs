//! Garbage collection: deletes what no one can read any more.
//!
//! Kept: the current manifest; every manifest a live lease or a checkpoint
//! pins; every manifest superseded less than `gc_grace_ms` ago (a reader
//! may have just loaded it); every segment any kept manifest lists; every
//! unlisted segment younger than `gc_grace_ms` (a fold or compaction may be
//! about to commit it; ids carry their creation time); every WAL object not
//! yet folded by a manifest at least `wal_min_age_ms` old (the stale-writer
//! fence, DESIGN §3.2). HEAD is moved to the current manifest first, so it
//! never names a deleted version. Everything else goes.
//!
//! GC commits nothing, so it commutes with folds and compactions; several
//! GC runs may overlap (deleting a deleted object succeeds), and a crash at
//! any point leaves only objects the next run deletes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use reef_format::Manifest;
use reef_manifest::store::DynStore;
use reef_manifest::{Layout, ManifestStore, Objects, Pins};

use crate::error::Result;
use crate::ids::created_at_ms;
use crate::options::CompactorOptions;

/// What a GC run deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// WAL objects deleted.
    pub wal: usize,
    /// Segments deleted.
    pub segments: usize,
    /// Manifest versions deleted.
    pub manifests: usize,
    /// Expired leases deleted.
    pub leases: usize,
    /// Manifest versions kept.
    pub kept_manifests: Vec<u64>,
}

/// Runs one GC pass over a namespace.
pub async fn gc(store: &DynStore, layout: &Layout, opts: &CompactorOptions) -> Result<GcReport> {
    let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let pins = Pins::new(Arc::clone(store), layout.clone(), Arc::clone(&opts.clock));
    let mut report = GcReport::default();
    let Some(current) = manifests.load_current().await? else {
        return Ok(report);
    };
    manifests.advance_head(current.version).await?;
    let now = opts.clock.now_ms();
    let pinned = pins.pins().await?;

    let mut loaded: BTreeMap<u64, Manifest> = BTreeMap::new();
    for v in manifests.list_versions().await? {
        if v <= current.version
            && let Some(m) = manifests.load(v).await?
        {
            loaded.insert(v, m);
        }
    }
    // When `v` stopped being current: when its successor was committed.
    // A deleted successor's time is unknown, but the next version still
    // here was committed no earlier, so its time errs on the side of
    // keeping `v` a little longer.
    let superseded_at = |v: u64| loaded.range(v + 1..).next().map(|(_, m)| m.created_at_ms);
    let keep = |v: u64| {
        v == current.version
            || pinned.versions.contains(&v)
            || superseded_at(v).is_none_or(|at| at.saturating_add(opts.gc_grace_ms) > now)
    };
    let kept: Vec<u64> = loaded.keys().copied().filter(|v| keep(*v)).collect();
    let reachable: HashSet<u128> = kept
        .iter()
        .filter_map(|v| loaded.get(v))
        .flat_map(|m| m.segments.iter().map(|s| s.id))
        .collect();

    // WAL folded by a manifest old enough that no stale writer can still
    // acknowledge into its LSNs.
    let folded_long_ago = loaded
        .values()
        .filter(|m| m.created_at_ms.saturating_add(opts.wal_min_age_ms) <= now)
        .map(|m| m.last_applied_lsn)
        .max()
        .unwrap_or(0);
    for lsn in objects
        .list_wal(0)
        .await?
        .into_iter()
        .take_while(|l| *l <= folded_long_ago)
    {
        store.delete(&layout.wal_key(lsn)).await?;
        report.wal += 1;
    }
    for id in objects.list_segments().await? {
        if !reachable.contains(&id) && created_at_ms(id).saturating_add(opts.gc_grace_ms) <= now {
            store.delete(&layout.segment_key(id)).await?;
            report.segments += 1;
        }
    }
    for v in loaded.keys().copied().filter(|v| !kept.contains(v)) {
        store.delete(&layout.manifest_key(v)).await?;
        report.manifests += 1;
    }
    for id in &pinned.expired_leases {
        store.delete(&layout.lease_key(id)).await?;
        report.leases += 1;
    }
    report.kept_manifests = kept;
    Ok(report)
}
