//! Decoders of the hand-encoded formats that postcard bodies replaced:
//! manifest versions 1 and 2, and version 1 of HEAD, lease and checkpoint.
//! Nothing writes these any more; objects already in buckets stay readable.
//!
//! Invariant: frozen. These functions change only to fix a bug in reading
//! bytes that a released Reef wrote; `tests/golden/*.v1.bin` and
//! `manifest.v2.bin` pin them.

use crate::codec::Reader;
use crate::error::{ObjectKind, Result};
use crate::frame::HEADER_BYTES;
use crate::manifest::{
    IDEMPOTENCY_RECORDS_MAX, IdempotencyRecord, Manifest, RECENT_WRITERS_MAX, SEGMENTS_MAX,
    SegmentMeta, Totals, WriteSummary,
};
use crate::pointer::{Checkpoint, Head, Lease, NAME_BYTES_MAX};
use crate::setsum::{SETSUM_BYTES, Setsum};

/// Smallest encoded `SegmentMeta`: id 16, level 1, five u64 counters 40,
/// setsum 32, two ids of at least one byte with u16 lengths 6.
const SEGMENT_META_BYTES_MIN: usize = 16 + 1 + 40 + SETSUM_BYTES + 6;
/// Smallest encoded `IdempotencyRecord`: key 2+1, fingerprint 16,
/// committed_at 8, lsn 8, flag 1, two versions 16, four counters 16.
const IDEMPOTENCY_RECORD_BYTES_MIN: usize = 3 + 16 + 8 + 8 + 1 + 16 + 16;

/// Decodes the body of a version 1 or 2 manifest. Version 1 had
/// `writer_epoch` where version 2 has `gc_floor` (read as floor 0), no
/// `idempotency_retention_ms` (read as 0) and no recent writers.
pub(crate) fn manifest(format: u16, body: &[u8], object: &str) -> Result<Manifest> {
    let mut r = Reader::new(body, ObjectKind::Manifest, object, HEADER_BYTES as u64);
    let setsum = |r: &mut Reader<'_>| -> Result<Setsum> {
        Setsum::from_bytes(
            &r.fixed::<SETSUM_BYTES>("setsum")?,
            ObjectKind::Manifest,
            object,
        )
    };
    let version = r.u64("version")?;
    // v1: writer_epoch, never checked by anyone; v2: the GC floor.
    let floor = r.u64(if format == 1 {
        "writer_epoch"
    } else {
        "gc_floor"
    })?;
    let mut m = Manifest {
        version,
        gc_floor: if format == 1 { 0 } else { floor },
        last_applied_lsn: r.u64("last_applied_lsn")?,
        last_version: r.u64("last_version")?,
        created_at_ms: r.u64("created_at_ms")?,
        ..Manifest::default()
    };
    if format >= 2 {
        m.idempotency_retention_ms = r.u64("idempotency_retention_ms")?;
    }
    m.totals = Totals {
        written: setsum(&mut r)?,
        written_count: r.u64("written_count")?,
        dropped: setsum(&mut r)?,
        dropped_count: r.u64("dropped_count")?,
        folded_bytes: r.u64("folded_bytes")?,
        compacted_bytes: r.u64("compacted_bytes")?,
    };
    let n = r.count("segments", SEGMENTS_MAX, SEGMENT_META_BYTES_MIN)?;
    m.segments.reserve(n);
    for _ in 0..n {
        m.segments.push(SegmentMeta {
            id: r.u128("segment id")?,
            level: r.u8("segment level")?,
            object_bytes: r.u64("object_bytes")?,
            entry_count: r.u64("entry_count")?,
            tombstone_count: r.u64("tombstone_count")?,
            min_version: r.u64("min_version")?,
            max_version: r.u64("max_version")?,
            setsum: setsum(&mut r)?,
            min_id: r.str16("min_id")?.to_owned(),
            max_id: r.str16("max_id")?.to_owned(),
        });
    }
    let n = r.count(
        "idempotency",
        IDEMPOTENCY_RECORDS_MAX,
        IDEMPOTENCY_RECORD_BYTES_MIN,
    )?;
    m.idempotency.reserve(n);
    for _ in 0..n {
        let key = r.str16("idempotency key")?.to_owned();
        let fingerprint = r.u128("fingerprint")?;
        let committed_at_ms = r.u64("committed_at_ms")?;
        let lsn = r.u64("lsn")?;
        let has_versions = r.u8("has_versions")?;
        let (first, last) = (r.u64("first_version")?, r.u64("last_version")?);
        let versions = match has_versions {
            0 if first == 0 && last == 0 => None,
            1 if first <= last => Some((first, last)),
            _ => return Err(r.corrupt("bad version range in idempotency record")),
        };
        let summary = WriteSummary {
            lsn,
            versions,
            upserted: r.u32("upserted")?,
            patched: r.u32("patched")?,
            deleted: r.u32("deleted")?,
            skipped: r.u32("skipped")?,
        };
        m.idempotency.push(IdempotencyRecord {
            key,
            fingerprint,
            committed_at_ms,
            summary,
        });
    }
    if format >= 2 {
        let n = r.count("recent_writers", RECENT_WRITERS_MAX, 8)?;
        m.recent_writers.reserve(n);
        for _ in 0..n {
            m.recent_writers.push(r.u64("writer id")?);
        }
    }
    r.finish("manifest")?;
    Ok(m)
}

fn name(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let s = r.str16(what)?;
    if s.len() > NAME_BYTES_MAX {
        return Err(r.corrupt(format!("{what} of {} bytes", s.len())));
    }
    Ok(s.to_owned())
}

/// Version 1 HEAD body: `manifest_version u64`.
pub(crate) fn head(body: &[u8], object: &str) -> Result<Head> {
    let mut r = Reader::new(body, ObjectKind::Head, object, HEADER_BYTES as u64);
    let head = Head {
        manifest_version: r.u64("manifest_version")?,
    };
    r.finish("HEAD")?;
    Ok(head)
}

/// Version 1 lease body: `holder str16`, then three u64s.
pub(crate) fn lease(body: &[u8], object: &str) -> Result<Lease> {
    let mut r = Reader::new(body, ObjectKind::Lease, object, HEADER_BYTES as u64);
    let lease = Lease {
        holder: name(&mut r, "holder")?,
        manifest_version: r.u64("manifest_version")?,
        renewed_at_ms: r.u64("renewed_at_ms")?,
        expires_at_ms: r.u64("expires_at_ms")?,
    };
    r.finish("lease")?;
    Ok(lease)
}

/// Version 1 checkpoint body: `name str16`, then two u64s.
pub(crate) fn checkpoint(body: &[u8], object: &str) -> Result<Checkpoint> {
    let mut r = Reader::new(body, ObjectKind::Checkpoint, object, HEADER_BYTES as u64);
    let ckpt = Checkpoint {
        name: name(&mut r, "name")?,
        manifest_version: r.u64("manifest_version")?,
        created_at_ms: r.u64("created_at_ms")?,
    };
    r.finish("checkpoint")?;
    Ok(ckpt)
}
