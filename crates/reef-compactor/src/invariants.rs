//! The rules every manifest commit keeps, checked in one place right before
//! the commit's put-if-absent (as SlateDB checks its invariants inside the
//! commit call). A violation is a bug in the committer, never a race: it is
//! reported as `Inconsistent` and nothing is written.
//!
//! - `written = live + dropped` (content is conserved);
//! - `last_applied_lsn` and `last_version` never decrease (the writer fence
//!   and recovery both read "newer manifest = folded at least as far");
//! - `gc_floor` never decreases and stays at or below the version;
//! - every segment the commit adds was written by an operation based at or
//!   above the floor (GC may already have deleted output from below it).

use reef_format::Manifest;
use reef_manifest::Layout;

use crate::error::{Error, Result};
use crate::ids::base_version;

/// Checks `next` as the successor of `current`.
/// `floor_rule: false` is the simulation's test-only knob (see
/// `Sabotage::skip_floor_check`).
pub fn check_next(
    layout: &Layout,
    current: &Manifest,
    next: &Manifest,
    floor_rule: bool,
) -> Result<()> {
    let key = layout.manifest_key(next.version);
    next.check_accounting(&key)?;
    let broken = |what: String| {
        Err(Error::Inconsistent {
            namespace: layout.namespace().to_owned(),
            reason: format!("refusing to commit {key}: {what}"),
        })
    };
    if next.version != current.version + 1 {
        return broken(format!("it follows version {}", current.version));
    }
    if next.last_applied_lsn < current.last_applied_lsn
        || next.last_version < current.last_version
        || next.gc_floor < current.gc_floor
    {
        return broken("last_applied_lsn, last_version or gc_floor would go backwards".into());
    }
    if next.gc_floor > next.version {
        return broken(format!("gc_floor {} is above the version", next.gc_floor));
    }
    for seg in &next.segments {
        let new = !current.segments.iter().any(|s| s.id == seg.id);
        if floor_rule && new && base_version(seg.id) < next.gc_floor {
            return broken(format!(
                "new segment {:032x} was written below the GC floor {}",
                seg.id, next.gc_floor
            ));
        }
    }
    Ok(())
}
