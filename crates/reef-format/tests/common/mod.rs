//! Fixed sample objects shared by the golden, corruption and property
//! tests. Changing any value here changes the golden files: that is the
//! point, so do it only together with a format version bump.

#![allow(dead_code)]

use bytes::Bytes;
use reef_format::{
    Checkpoint, Document, Entry, Head, IdempotencyRecord, Lease, Limits, Manifest, OpKind,
    SegmentBuilder, SegmentMeta, SegmentOptions, Setsum, Totals, Value, WalOp, WalRecord,
    WalRequest, WriteSummary, encode_document,
};

/// A document exercising every value type.
pub fn sample_document() -> Document {
    let mut nested = Document::new();
    nested.insert("k".into(), Value::String("v".into()));
    [
        ("null", Value::Null),
        ("no", Value::Bool(false)),
        ("yes", Value::Bool(true)),
        ("int", Value::I64(-42)),
        ("float", Value::F64(2.5)),
        ("str", Value::String("héllo".into())),
        ("raw", Value::Bytes(vec![0, 1, 0xfe, 0xff])),
        (
            "list",
            Value::Array(vec![Value::I64(1), Value::String("two".into())]),
        ),
        ("obj", Value::Object(nested)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn doc_bytes(n: i64) -> Bytes {
    let doc: Document = [("n".to_owned(), Value::I64(n))].into();
    Bytes::from(encode_document(&doc, &Limits::default()).unwrap())
}

pub fn sample_wal() -> WalRecord {
    let full = Bytes::from(encode_document(&sample_document(), &Limits::default()).unwrap());
    WalRecord {
        lsn: 42,
        writer_id: 0xfeed_beef,
        timestamp_ms: 1_790_000_000_000,
        requests: vec![
            WalRequest {
                idempotency_key: Some("req-1".into()),
                fingerprint: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                skipped: 1,
                ops: vec![
                    WalOp {
                        kind: OpKind::Upsert,
                        entry: Entry::put("doc/a", 100, full),
                    },
                    WalOp {
                        kind: OpKind::Patch,
                        entry: Entry::put("doc/b", 101, doc_bytes(7)),
                    },
                ],
            },
            WalRequest {
                idempotency_key: None,
                fingerprint: 9,
                skipped: 0,
                ops: vec![WalOp {
                    kind: OpKind::Delete,
                    entry: Entry::delete("doc/c", 102),
                }],
            },
        ],
    }
}

/// Entries in segment order, with several versions of one id and a
/// tombstone, spread over several blocks by a small block size.
pub fn sample_segment_entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0..40u64 {
        let id = format!("id/{i:03}");
        if i % 10 == 3 {
            out.push(Entry::delete(id.clone(), 1000 + i));
        }
        out.push(Entry::put(id.clone(), 100 + i, doc_bytes(i as i64)));
        if i % 7 == 0 {
            out.push(Entry::put(id, 10 + i, doc_bytes(-(i as i64))));
        }
    }
    out
}

pub fn sample_segment_options() -> SegmentOptions {
    SegmentOptions {
        block_bytes_target: 256,
        bloom_bits_per_key: 10,
    }
}

pub fn build_segment(entries: &[Entry], opts: SegmentOptions) -> Bytes {
    let mut b = SegmentBuilder::new(opts);
    for e in entries {
        b.add(e).unwrap();
    }
    b.finish().unwrap().bytes
}

pub fn sample_segment() -> Bytes {
    build_segment(&sample_segment_entries(), sample_segment_options())
}

pub fn sample_manifest() -> Manifest {
    let entries = sample_segment_entries();
    let setsum = entries
        .iter()
        .fold(Setsum::EMPTY, |s, e| s.add(&e.setsum()));
    let dropped = Entry::put("id/999", 1, doc_bytes(0)).setsum();
    Manifest {
        version: 17,
        gc_floor: 12,
        last_applied_lsn: 41,
        last_version: 1039,
        created_at_ms: 1_790_000_000_500,
        idempotency_retention_ms: 86_400_000,
        segments: vec![SegmentMeta {
            id: 0x00ab_cdef_0000_0000_0000_0000_0000_0001,
            level: 0,
            object_bytes: 4096,
            entry_count: entries.len() as u64,
            tombstone_count: 4,
            min_version: 10,
            max_version: 1033,
            setsum,
            min_id: "id/000".into(),
            max_id: "id/039".into(),
        }],
        totals: Totals {
            written: setsum.add(&dropped),
            written_count: entries.len() as u64 + 1,
            dropped,
            dropped_count: 1,
            folded_bytes: 4096,
            compacted_bytes: 8192,
        },
        idempotency: vec![
            IdempotencyRecord {
                key: "req-1".into(),
                fingerprint: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                committed_at_ms: 1_790_000_000_000,
                summary: WriteSummary {
                    lsn: 42,
                    versions: Some((100, 101)),
                    upserted: 1,
                    patched: 1,
                    deleted: 0,
                    skipped: 1,
                },
            },
            IdempotencyRecord {
                key: "req-0".into(),
                fingerprint: 5,
                committed_at_ms: 1_789_999_999_000,
                summary: WriteSummary {
                    lsn: 40,
                    versions: None,
                    skipped: 2,
                    ..Default::default()
                },
            },
        ],
        recent_writers: vec![0xfeed_beef, 0x1234, 0xfeed_beef],
    }
}

pub fn sample_head() -> Head {
    Head {
        manifest_version: 17,
    }
}

pub fn sample_lease() -> Lease {
    Lease {
        holder: "host-a/pid-1234".into(),
        manifest_version: 16,
        renewed_at_ms: 1_790_000_000_000,
        expires_at_ms: 1_790_000_030_000,
    }
}

pub fn sample_checkpoint() -> Checkpoint {
    Checkpoint {
        name: "before-migration".into(),
        manifest_version: 15,
        created_at_ms: 1_789_000_000_000,
    }
}

/// One encoded sample of every object kind, by golden file stem.
pub fn all_samples() -> Vec<(&'static str, Bytes)> {
    let limits = Limits::default();
    vec![
        (
            "document",
            Bytes::from(encode_document(&sample_document(), &limits).unwrap()),
        ),
        ("wal", Bytes::from(sample_wal().encode().unwrap())),
        ("segment", sample_segment()),
        ("manifest", Bytes::from(sample_manifest().encode().unwrap())),
        ("head", Bytes::from(sample_head().encode().unwrap())),
        ("lease", Bytes::from(sample_lease().encode().unwrap())),
        (
            "checkpoint",
            Bytes::from(sample_checkpoint().encode().unwrap()),
        ),
    ]
}

/// Fully decodes `bytes` as an object of `kind` (for segments: opens it
/// and verifies every block and the footer's claims), returning the
/// first error.
pub fn decode_fully(kind: &str, bytes: &Bytes) -> Result<(), reef_format::FormatError> {
    use reef_format::{Manifest, Segment, decode_document};
    match kind {
        "document" => decode_document(bytes, "t").map(drop),
        "wal" => WalRecord::decode(bytes, "t").map(drop),
        "segment" => Segment::open(bytes.clone(), "t")?.verify(),
        "manifest" => Manifest::decode(bytes, "t").map(drop),
        "head" => Head::decode(bytes, "t").map(drop),
        "lease" => Lease::decode(bytes, "t").map(drop),
        "checkpoint" => Checkpoint::decode(bytes, "t").map(drop),
        other => panic!("unknown kind {other}"),
    }
}

/// The current format version of each object kind's samples.
pub fn format_version(kind: &str) -> u16 {
    match kind {
        "wal" => reef_format::WAL_FORMAT_VERSION,
        "segment" => reef_format::segment::SEGMENT_FORMAT_VERSION,
        "manifest" => reef_format::MANIFEST_FORMAT_VERSION,
        "head" | "lease" | "checkpoint" => reef_format::CONTROL_FORMAT_VERSION,
        // The document encoding is versioned by the objects holding it.
        _ => 1,
    }
}
