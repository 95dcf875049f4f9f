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

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::{FrameSpec, HEADER_BYTES};
use crate::limits::{ID_BYTES_HARD_MAX, IDEMPOTENCY_KEY_BYTES_HARD_MAX};
use crate::segment::SegmentFooter;
use crate::setsum::Setsum;
use crate::{legacy, wire};

/// Current manifest format version. Version 3 is a postcard body (the field
/// order of the types below); versions 1 and 2 were hand-encoded and are
/// still read (`legacy`).
pub const MANIFEST_FORMAT_VERSION: u16 = 3;
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

const MANIFEST_FRAME: FrameSpec = FrameSpec {
    kind: ObjectKind::Manifest,
    magic: *b"RFMF",
    version: MANIFEST_FORMAT_VERSION,
    body_bytes_max: MANIFEST_BODY_BYTES_MAX,
};

/// A live segment as the manifest records it (a copy of its footer's
/// summary, so planning needs no segment reads).
///
/// Field order is wire order (format 3): reorder nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// Field order is wire order (format 3): reorder nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// Field order is wire order (format 3): reorder nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// Field order is wire order (format 3): reorder nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// Field order is wire order (format 3, docs/format.md): reorder nothing;
/// a new field is a format version bump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Encodes and frames the manifest (a postcard body, format 3).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check(|reason| FormatError::invalid("manifest", reason))?;
        MANIFEST_FRAME.seal(&wire::encode(self, "manifest")?)
    }

    /// Checks the frame and decodes a manifest of any supported version.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Manifest> {
        let (format, body) = MANIFEST_FRAME.open_versioned(bytes, object)?;
        let m: Manifest = match format {
            1 | 2 => legacy::manifest(format, body, object)?,
            _ => wire::decode(body, ObjectKind::Manifest, object)?,
        };
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
        if self.segments.len() > SEGMENTS_MAX || self.idempotency.len() > IDEMPOTENCY_RECORDS_MAX {
            return Err(err(format!(
                "{} segments and {} idempotency records (at most {SEGMENTS_MAX} and {IDEMPOTENCY_RECORDS_MAX})",
                self.segments.len(),
                self.idempotency.len()
            )));
        }
        let mut ids = std::collections::HashSet::with_capacity(self.segments.len());
        for s in &self.segments {
            if !ids.insert(s.id) {
                return Err(err(format!("segment {:032x} listed twice", s.id)));
            }
            if s.level > LEVEL_MAX
                || s.min_id.is_empty()
                || s.min_id.len() > ID_BYTES_HARD_MAX
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
            let s = &rec.summary;
            if s.versions.is_some_and(|(first, last)| first > last) {
                return Err(err(format!(
                    "idempotency key {:?} has versions {:?}",
                    rec.key, s.versions
                )));
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

    /// The postcard body has one spelling: the same manifest with its first
    /// varint written long (and the frame's CRC fixed) is corruption.
    #[test]
    fn a_non_canonical_body_is_corrupt() {
        let m = Manifest {
            version: 7,
            ..Manifest::default()
        };
        let framed = m.encode().unwrap();
        let body = &framed[HEADER_BYTES..framed.len() - crate::frame::TRAILER_BYTES];
        assert_eq!(body[0], 7);
        let mut long = vec![0x87, 0x00];
        long.extend_from_slice(&body[1..]);
        let reframed = MANIFEST_FRAME.seal(&long).unwrap();
        let err = Manifest::decode(&reframed, "m").unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains("canonical"),
            "{err}"
        );
    }
}
