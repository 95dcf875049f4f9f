//! Manifest versions (`manifest/<version>.mf`): the committed state of a
//! namespace. Creating version N+1 with put-if-absent is the commit point of
//! fold, compaction and GC.
//!
//! A manifest lists the live segments by level, how far the WAL has been
//! folded (`last_applied_lsn`), the GC floor (the oldest version anyone may
//! still build on or pin, see `gc_floor`), the namespace's idempotency
//! retention, the idempotency records still inside it, and the
//! namespace's content totals: `written` (everything ever acknowledged) and
//! `dropped` (superseded entries removed by fold or compaction). The live
//! digest is the sum of the segments' setsums, so `check_accounting` can
//! prove `written = live + dropped`.
//!
//! Invariants checked on encode and decode: segment ids unique; each
//! segment's id and version ranges ordered; idempotency keys unique.

use crate::codec::{Reader, Writer};
use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::{FrameSpec, HEADER_BYTES};
use crate::limits::{ID_BYTES_HARD_MAX, IDEMPOTENCY_KEY_BYTES_HARD_MAX};
use crate::segment::SegmentFooter;
use crate::setsum::{SETSUM_BYTES, Setsum};

/// Current manifest format version. Version 1 had `writer_epoch` where
/// version 2 has `gc_floor`, and no `idempotency_retention_ms`; version 1
/// manifests are still read (floor 0, retention unset).
pub const MANIFEST_FORMAT_VERSION: u16 = 2;
/// Largest manifest body accepted.
pub const MANIFEST_BODY_BYTES_MAX: u64 = 256 << 20;
/// Most segments one manifest may list.
pub const SEGMENTS_MAX: usize = 1_000_000;
/// Most idempotency records one manifest may carry.
pub const IDEMPOTENCY_RECORDS_MAX: usize = 1_000_000;
/// Highest level number.
pub const LEVEL_MAX: u8 = 7;
/// How many of the most recently folded WAL records' writer ids a manifest
/// keeps (`Manifest::recent_writers`).
pub const RECENT_WRITERS_MAX: usize = 256;

/// Smallest encoded `SegmentMeta`: id 16, level 1, five u64 counters 40,
/// setsum 32, two ids of at least one byte with u16 lengths 6.
const SEGMENT_META_BYTES_MIN: usize = 16 + 1 + 40 + SETSUM_BYTES + 6;
/// Smallest encoded `IdempotencyRecord`: key 2+1, fingerprint 16,
/// committed_at 8, lsn 8, flag 1, two versions 16, four counters 16.
const IDEMPOTENCY_RECORD_BYTES_MIN: usize = 3 + 16 + 8 + 8 + 1 + 16 + 16;

const MANIFEST_FRAME: FrameSpec = FrameSpec {
    kind: ObjectKind::Manifest,
    magic: *b"RFMF",
    version: MANIFEST_FORMAT_VERSION,
    body_bytes_max: MANIFEST_BODY_BYTES_MAX,
};

/// A live segment as the manifest records it (a copy of its footer's
/// summary, so planning needs no segment reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Unique id; the object key is `seg/<id as 32 hex digits>.seg`.
    pub id: u128,
    /// 0 for folded segments, 1.. for compacted ones.
    pub level: u8,
    /// Size of the segment object.
    pub object_bytes: u64,
    /// Entries in the segment.
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Smallest version.
    pub min_version: u64,
    /// Largest version.
    pub max_version: u64,
    /// Setsum of its entries.
    pub setsum: Setsum,
    /// Smallest id.
    pub min_id: String,
    /// Largest id.
    pub max_id: String,
}

impl SegmentMeta {
    /// The manifest's record of a segment, copied from its footer.
    pub fn from_footer(id: u128, level: u8, object_bytes: u64, f: &SegmentFooter) -> SegmentMeta {
        SegmentMeta {
            id,
            level,
            object_bytes,
            entry_count: f.entry_count,
            tombstone_count: f.tombstone_count,
            min_version: f.min_version,
            max_version: f.max_version,
            setsum: f.setsum,
            min_id: f.min_id.clone(),
            max_id: f.max_id.clone(),
        }
    }

    /// Whether a segment's footer agrees with this record (what `verify`
    /// checks for every live segment).
    pub fn matches(&self, object_bytes: u64, f: &SegmentFooter) -> bool {
        *self == SegmentMeta::from_footer(self.id, self.level, object_bytes, f)
    }
}

/// What a committed request did, kept for idempotent replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// LSN of the WAL record that committed the request.
    pub lsn: u64,
    /// First and last version the request assigned; `None` when it changed
    /// nothing (every op a skipped patch).
    pub versions: Option<(u64, u64)>,
    /// Upserts applied.
    pub upserted: u32,
    /// Patches applied.
    pub patched: u32,
    /// Deletes applied.
    pub deleted: u32,
    /// Patches of missing ids skipped.
    pub skipped: u32,
}

/// An idempotency key still inside its retention window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: String,
    /// Fingerprint of the request's ops.
    pub fingerprint: u128,
    /// When the request was committed (ms since the Unix epoch).
    pub committed_at_ms: u64,
    /// Its original result.
    pub summary: WriteSummary,
}

/// Content totals of a namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Digest of every entry ever folded out of the WAL.
    pub written: Setsum,
    /// Count of those entries.
    pub written_count: u64,
    /// Digest of entries dropped by fold or compaction.
    pub dropped: Setsum,
    /// Count of those entries.
    pub dropped_count: u64,
    /// Bytes of level-0 segments written by folds (what users' data cost
    /// once).
    pub folded_bytes: u64,
    /// Bytes of segments written by compactions (the rewrite cost).
    pub compacted_bytes: u64,
}

impl Totals {
    /// Bytes written to segments per byte folded: `(folded + compacted) /
    /// folded`, or `None` before the first fold.
    pub fn write_amplification(&self) -> Option<f64> {
        (self.folded_bytes > 0)
            .then(|| (self.folded_bytes + self.compacted_bytes) as f64 / self.folded_bytes as f64)
    }
}

/// One manifest version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// This manifest's version; equals the number in its object key.
    pub version: u64,
    /// Every WAL record with `lsn <= last_applied_lsn` is folded into the
    /// segments below.
    pub last_applied_lsn: u64,
    /// Highest document version folded.
    pub last_version: u64,
    /// When this version was created (ms since the Unix epoch, by the
    /// committer's clock: a hint for GC's grace period, never for safety).
    pub created_at_ms: u64,
    /// The GC floor: no fold or compaction based on an older manifest
    /// version may commit on top of this one, and no lease or checkpoint
    /// may pin an older version once this manifest is visible. GC raises it
    /// (by a commit of its own) before deleting older versions and the
    /// segments only they or abandoned operations wrote. Never decreases
    /// and never exceeds `version`.
    pub gc_floor: u64,
    /// How long idempotency keys are kept (ms); one value per namespace.
    /// 0: not set yet (a version 1 manifest); committers then use theirs.
    pub idempotency_retention_ms: u64,
    /// Live segments.
    pub segments: Vec<SegmentMeta>,
    /// Content totals.
    pub totals: Totals,
    /// Idempotency records still within retention.
    pub idempotency: Vec<IdempotencyRecord>,
    /// Writer ids of the WAL records at LSNs
    /// `(last_applied_lsn - len, last_applied_lsn]`, oldest first, at most
    /// `RECENT_WRITERS_MAX`: a writer that finds its LSN already folded
    /// learns from it whether the fold took its own record.
    pub recent_writers: Vec<u64>,
}

impl Manifest {
    /// The writer id of the folded WAL record at `lsn`, if `lsn` is folded
    /// and recent enough to be remembered.
    pub fn folded_writer(&self, lsn: u64) -> Option<u64> {
        let behind = self.last_applied_lsn.checked_sub(lsn)?;
        let len = self.recent_writers.len();
        let index = len
            .checked_sub(1)?
            .checked_sub(usize::try_from(behind).ok()?)?;
        self.recent_writers.get(index).copied()
    }

    /// Digest and count of all live entries: the sums over the segments.
    /// The count is `None` if it overflows (only a damaged manifest can).
    pub fn live(&self) -> (Setsum, Option<u64>) {
        self.segments
            .iter()
            .fold((Setsum::EMPTY, Some(0)), |(s, n), seg| {
                (
                    s.add(&seg.setsum),
                    n.and_then(|n| n.checked_add(seg.entry_count)),
                )
            })
    }

    /// Checks `written = live + dropped`, both as digests and as counts.
    pub fn check_accounting(&self, object: &str) -> Result<()> {
        let (live, live_count) = self.live();
        let t = &self.totals;
        let sum = live.add(&t.dropped);
        let count = live_count.and_then(|n| n.checked_add(t.dropped_count));
        if sum != t.written || count != Some(t.written_count) {
            return Err(FormatError::Corrupt {
                kind: ObjectKind::Manifest,
                object: object.to_owned(),
                offset: 0,
                reason: format!(
                    "accounting broken: written {} ({} entries) != live {} ({live_count:?}) + dropped {} ({})",
                    t.written.to_hex(),
                    t.written_count,
                    live.to_hex(),
                    t.dropped.to_hex(),
                    t.dropped_count
                ),
            });
        }
        Ok(())
    }

    /// Encodes and frames the manifest.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check(|reason| FormatError::invalid("manifest", reason))?;
        let mut w = Writer::with_capacity(256 + self.segments.len() * 128);
        w.u64(self.version);
        w.u64(self.gc_floor);
        w.u64(self.last_applied_lsn);
        w.u64(self.last_version);
        w.u64(self.created_at_ms);
        w.u64(self.idempotency_retention_ms);
        w.bytes(&self.totals.written.to_bytes());
        w.u64(self.totals.written_count);
        w.bytes(&self.totals.dropped.to_bytes());
        w.u64(self.totals.dropped_count);
        w.u64(self.totals.folded_bytes);
        w.u64(self.totals.compacted_bytes);
        w.count("segments", self.segments.len())?;
        for s in &self.segments {
            w.u128(s.id);
            w.u8(s.level);
            w.u64(s.object_bytes);
            w.u64(s.entry_count);
            w.u64(s.tombstone_count);
            w.u64(s.min_version);
            w.u64(s.max_version);
            w.bytes(&s.setsum.to_bytes());
            w.bytes16("segment.min_id", s.min_id.as_bytes())?;
            w.bytes16("segment.max_id", s.max_id.as_bytes())?;
        }
        w.count("idempotency", self.idempotency.len())?;
        for rec in &self.idempotency {
            w.bytes16("idempotency.key", rec.key.as_bytes())?;
            w.u128(rec.fingerprint);
            w.u64(rec.committed_at_ms);
            let s = &rec.summary;
            w.u64(s.lsn);
            match s.versions {
                None => {
                    w.u8(0);
                    w.u64(0);
                    w.u64(0);
                }
                Some((first, last)) => {
                    w.u8(1);
                    w.u64(first);
                    w.u64(last);
                }
            }
            w.u32(s.upserted);
            w.u32(s.patched);
            w.u32(s.deleted);
            w.u32(s.skipped);
        }
        w.count("recent_writers", self.recent_writers.len())?;
        for id in &self.recent_writers {
            w.u64(*id);
        }
        MANIFEST_FRAME.seal(w.as_slice())
    }

    /// Checks the frame and decodes a manifest.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Manifest> {
        let (format, body) = MANIFEST_FRAME.open_versioned(bytes, object)?;
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
        m.check(|reason| FormatError::Corrupt {
            kind: ObjectKind::Manifest,
            object: object.to_owned(),
            offset: HEADER_BYTES as u64,
            reason,
        })?;
        Ok(m)
    }

    fn check(&self, err: impl Fn(String) -> FormatError) -> Result<()> {
        let remembered = self.recent_writers.len();
        if remembered > RECENT_WRITERS_MAX || remembered as u64 > self.last_applied_lsn {
            return Err(err(format!(
                "{remembered} recent writer ids for last_applied_lsn {} (at most {RECENT_WRITERS_MAX})",
                self.last_applied_lsn
            )));
        }
        if self.gc_floor > self.version {
            return Err(err(format!(
                "gc_floor {} is above the manifest's own version {}",
                self.gc_floor, self.version
            )));
        }
        let mut ids = std::collections::HashSet::with_capacity(self.segments.len());
        for s in &self.segments {
            if !ids.insert(s.id) {
                return Err(err(format!("segment {:032x} listed twice", s.id)));
            }
            if s.level > LEVEL_MAX
                || s.min_id.is_empty()
                || s.max_id.len() > ID_BYTES_HARD_MAX
                || s.min_id > s.max_id
                || s.min_version > s.max_version
                || s.tombstone_count > s.entry_count
                || s.entry_count == 0
            {
                return Err(err(format!(
                    "segment {:032x} has inconsistent metadata",
                    s.id
                )));
            }
        }
        let mut keys = std::collections::HashSet::with_capacity(self.idempotency.len());
        for rec in &self.idempotency {
            if rec.key.is_empty() || rec.key.len() > IDEMPOTENCY_KEY_BYTES_HARD_MAX {
                return Err(err(format!("idempotency key of {} bytes", rec.key.len())));
            }
            if !keys.insert(rec.key.as_str()) {
                return Err(err(format!("idempotency key {:?} listed twice", rec.key)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder's per-item minimum sizes must not refuse the smallest
    /// legal items at the very end of the body.
    #[test]
    fn encoder_refuses_keys_the_decoder_would() {
        let rec = |key: &str| IdempotencyRecord {
            key: key.into(),
            fingerprint: 0,
            committed_at_ms: 0,
            summary: WriteSummary::default(),
        };
        for bad in [
            String::new(),
            "k".repeat(IDEMPOTENCY_KEY_BYTES_HARD_MAX + 1),
        ] {
            let m = Manifest {
                idempotency: vec![rec(&bad)],
                ..Manifest::default()
            };
            assert!(
                matches!(m.encode(), Err(FormatError::Invalid { .. })),
                "{} bytes",
                bad.len()
            );
        }
    }

    #[test]
    fn accounting_overflow_is_reported_not_a_panic() {
        let seg = |id| SegmentMeta {
            id,
            level: 1,
            object_bytes: 1,
            entry_count: u64::MAX,
            tombstone_count: 0,
            min_version: 1,
            max_version: 1,
            setsum: Setsum::EMPTY,
            min_id: "a".into(),
            max_id: "a".into(),
        };
        let m = Manifest {
            segments: vec![seg(1), seg(2)],
            ..Manifest::default()
        };
        assert!(m.check_accounting("m").unwrap_err().is_corruption());
    }

    #[test]
    fn smallest_items_round_trip() {
        let m = Manifest {
            segments: vec![SegmentMeta {
                id: 1,
                level: 0,
                object_bytes: 1,
                entry_count: 1,
                tombstone_count: 0,
                min_version: 1,
                max_version: 1,
                setsum: Setsum::EMPTY,
                min_id: "a".into(),
                max_id: "a".into(),
            }],
            idempotency: vec![IdempotencyRecord {
                key: "k".into(),
                fingerprint: 0,
                committed_at_ms: 0,
                summary: WriteSummary::default(),
            }],
            ..Manifest::default()
        };
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes, "m").unwrap(), m);
        let only_segment = Manifest {
            idempotency: vec![],
            ..m.clone()
        };
        let bytes = only_segment.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes, "m").unwrap(), only_segment);
    }
}
