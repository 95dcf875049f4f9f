//! Property tests over random inputs: every codec round-trips; random
//! single-byte damage and truncation of random objects are detected; any
//! byte string fed to any decoder gives a value or an error, never a panic;
//! segment point lookups and range scans agree with a `BTreeMap` model.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use reef_format::{
    Checkpoint, Document, Entry, Head, IdempotencyRecord, Lease, Limits, Manifest, OpKind, Segment,
    SegmentMeta, SegmentOptions, Setsum, Totals, Value, WalOp, WalRecord, WalRequest, WriteSummary,
    decode_document, document_from_json, document_to_json, encode_document,
};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F64),
        ".{0,12}".prop_map(Value::String),
        vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(".{0,6}", inner, 0..4).prop_map(Value::Object),
        ]
    })
}

fn document() -> impl Strategy<Value = Document> {
    btree_map(".{0,8}", value(), 0..6)
}

fn doc_bytes() -> impl Strategy<Value = Bytes> {
    document().prop_map(|d| Bytes::from(encode_document(&d, &Limits::default()).unwrap()))
}

fn id() -> impl Strategy<Value = String> {
    // A small alphabet makes shared prefixes and collisions likely.
    "[a-d/é]{1,6}"
}

/// Entries in segment order (id ascending, version descending), with
/// several versions for some ids.
fn sorted_entries() -> impl Strategy<Value = Vec<Entry>> {
    btree_map(
        (id(), any::<u64>()),
        proptest::option::of(doc_bytes()),
        1..60,
    )
    .prop_map(|m| {
        let mut v: Vec<Entry> = m
            .into_iter()
            .map(|((id, version), doc)| match doc {
                Some(d) => Entry::put(id, version, d),
                None => Entry::delete(id, version),
            })
            .collect();
        v.sort_by(|a, b| {
            a.id.as_bytes()
                .cmp(b.id.as_bytes())
                .then(b.version.cmp(&a.version))
        });
        v
    })
}

fn wal_record() -> impl Strategy<Value = WalRecord> {
    let op = (id(), proptest::option::of(doc_bytes()), any::<bool>());
    let request = (
        proptest::option::of("[a-z0-9-]{1,20}"),
        any::<u128>(),
        any::<u32>(),
        vec(op, 0..5),
    );
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        vec(request, 0..5),
        1u64..1_000_000,
    )
        .prop_map(|(lsn, epoch, ts, requests, mut version)| WalRecord {
            lsn,
            writer_id: epoch.rotate_left(17),
            timestamp_ms: ts,
            requests: requests
                .into_iter()
                .scan(std::collections::HashSet::new(), |seen, r| {
                    // Keys are unique within a record (the codec refuses
                    // duplicates): a repeated key becomes no key.
                    let key = r.0.filter(|k| seen.insert(k.clone()));
                    Some((key, r.1, r.2, r.3))
                })
                .map(|(key, fp, skipped, ops)| WalRequest {
                    idempotency_key: key,
                    fingerprint: fp,
                    skipped,
                    ops: ops
                        .into_iter()
                        .map(|(id, doc, patch)| {
                            version += 1;
                            match doc {
                                Some(d) => WalOp {
                                    kind: if patch { OpKind::Patch } else { OpKind::Upsert },
                                    entry: Entry::put(id, version, d),
                                },
                                None => WalOp {
                                    kind: OpKind::Delete,
                                    entry: Entry::delete(id, version),
                                },
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
}

fn setsum() -> impl Strategy<Value = Setsum> {
    vec(any::<[u8; 32]>(), 0..3).prop_map(|hs| {
        hs.iter()
            .fold(Setsum::EMPTY, |s, h| s.add(&Setsum::of_hash(h)))
    })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    let segment = (
        any::<u128>(),
        0u8..=7,
        any::<u64>(),
        1u64..1000,
        id(),
        id(),
        setsum(),
        any::<u32>(),
    )
        .prop_map(|(sid, level, bytes, entries, a, b, setsum, v)| {
            let (min_id, max_id) = if a <= b { (a, b) } else { (b, a) };
            SegmentMeta {
                id: sid,
                level,
                object_bytes: bytes,
                entry_count: entries,
                tombstone_count: entries / 2,
                min_version: u64::from(v),
                max_version: u64::from(v) + entries,
                setsum,
                min_id,
                max_id,
            }
        });
    let summary = (
        any::<u64>(),
        proptest::option::of((0u64..100, 0u64..100)),
        any::<[u32; 4]>(),
    )
        .prop_map(|(lsn, vr, c)| WriteSummary {
            lsn,
            versions: vr.map(|(a, n)| (a, a + n)),
            upserted: c[0],
            patched: c[1],
            deleted: c[2],
            skipped: c[3],
        });
    let records = btree_map("[a-z]{1,10}", (any::<u128>(), any::<u64>(), summary), 0..4);
    (
        any::<[u64; 5]>(),
        btree_map(any::<u128>(), segment, 0..5),
        records,
        setsum(),
        setsum(),
        any::<[u64; 2]>(),
    )
        .prop_map(|(n, segs, recs, written, dropped, counts)| Manifest {
            version: n[0],
            recent_writers: (0..n[2].min(3)).map(|i| n[4] ^ i).collect(),
            gc_floor: n[1].min(n[0]),
            idempotency_retention_ms: n[1],
            last_applied_lsn: n[2],
            last_version: n[3],
            created_at_ms: n[4],
            segments: segs
                .into_iter()
                .map(|(sid, s)| SegmentMeta { id: sid, ..s })
                .collect(),
            totals: Totals {
                written,
                written_count: counts[0],
                dropped,
                dropped_count: counts[1],
                folded_bytes: counts[0] / 3,
                compacted_bytes: counts[1] / 5,
            },
            idempotency: recs
                .into_iter()
                .map(
                    |(key, (fingerprint, committed_at_ms, summary))| IdempotencyRecord {
                        key,
                        fingerprint,
                        committed_at_ms,
                        summary,
                    },
                )
                .collect(),
        })
}

fn segment_options() -> impl Strategy<Value = SegmentOptions> {
    (16usize..2048, 1u32..20).prop_map(|(block, bits)| SegmentOptions {
        block_bytes_target: block,
        bloom_bits_per_key: bits,
    })
}

/// Every encoded object kind, from random inputs, tagged like the samples.
fn any_object() -> impl Strategy<Value = (&'static str, Bytes)> {
    prop_oneof![
        wal_record().prop_map(|r| ("wal", Bytes::from(r.encode().unwrap()))),
        (sorted_entries(), segment_options())
            .prop_map(|(e, o)| ("segment", common::build_segment(&e, o))),
        manifest().prop_map(|m| ("manifest", Bytes::from(m.encode().unwrap()))),
        any::<u64>().prop_map(|v| (
            "head",
            Bytes::from(
                Head {
                    manifest_version: v
                }
                .encode()
                .unwrap()
            )
        )),
        (".{0,20}", any::<[u64; 3]>()).prop_map(|(h, n)| (
            "lease",
            Bytes::from(
                Lease {
                    holder: h,
                    manifest_version: n[0],
                    renewed_at_ms: n[1],
                    expires_at_ms: n[2]
                }
                .encode()
                .unwrap()
            )
        )),
        (".{0,20}", any::<[u64; 2]>()).prop_map(|(name, n)| (
            "checkpoint",
            Bytes::from(
                Checkpoint {
                    name,
                    manifest_version: n[0],
                    created_at_ms: n[1]
                }
                .encode()
                .unwrap()
            )
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn document_round_trips(doc in document()) {
        let bytes = encode_document(&doc, &Limits::default()).unwrap();
        prop_assert_eq!(&decode_document(&bytes, "d").unwrap(), &doc);
        // JSON conversion is lossless for documents too.
        let json = document_to_json(&doc);
        prop_assert_eq!(document_from_json(&json, "doc").unwrap(), doc);
    }

    #[test]
    fn wal_round_trips(rec in wal_record()) {
        let bytes = Bytes::from(rec.encode().unwrap());
        prop_assert_eq!(WalRecord::decode(&bytes, "w").unwrap(), rec);
    }

    #[test]
    fn manifest_round_trips(m in manifest()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(Manifest::decode(&bytes, "m").unwrap(), m);
    }

    #[test]
    fn segment_round_trips_and_answers_like_a_model(
        entries in sorted_entries(),
        opts in segment_options(),
        probes in vec((id(), any::<u64>()), 1..20),
        range in (id(), id()),
    ) {
        let bytes = common::build_segment(&entries, opts);
        let seg = Segment::open(bytes, "s").unwrap();
        let all: Vec<Entry> = seg.iter().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&all, &entries);
        let sum = entries.iter().fold(Setsum::EMPTY, |s, e| s.add(&e.setsum()));
        prop_assert_eq!(seg.footer().setsum, sum);

        // Model: id -> versions newest first.
        let mut model: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in &entries {
            model.entry(e.id.as_str()).or_default().push(e);
        }
        // Probe existing ids at their own versions too, not only random ones.
        let mut probes = probes;
        probes.extend(entries.iter().map(|e| (e.id.clone(), e.version)));
        for (pid, at) in probes {
            let expected = model.get(pid.as_str()).and_then(|vs| vs.iter().find(|e| e.version <= at)).cloned();
            let got = seg.get(&pid, at).unwrap();
            prop_assert_eq!(got.as_ref(), expected, "get({:?}, {})", pid, at);
        }
        let (lo, hi) = if range.0 <= range.1 { range } else { (range.1, range.0) };
        let got: Vec<Entry> = seg
            .range(Bound::Included(&lo), Bound::Excluded(&hi))
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<Entry> =
            entries.iter().filter(|e| e.id >= lo && e.id < hi).cloned().collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn random_damage_to_random_objects_is_detected(
        (kind, bytes) in any_object(),
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        common::decode_fully(kind, &bytes).unwrap();
        let mut damaged = bytes.to_vec();
        damaged[pos.index(bytes.len())] ^= xor;
        let err = common::decode_fully(kind, &Bytes::from(damaged)).unwrap_err();
        prop_assert!(err.is_corruption(), "{}: {}", kind, err);
        let truncated = bytes.slice(..cut.index(bytes.len()));
        let err = common::decode_fully(kind, &truncated).unwrap_err();
        prop_assert!(err.is_corruption(), "{}: {}", kind, err);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let bytes = Bytes::from(bytes);
        for kind in ["document", "wal", "segment", "manifest", "head", "lease", "checkpoint"] {
            // Any result is fine; reaching the next line means no panic.
            let _ = common::decode_fully(kind, &bytes);
        }
    }

    /// Valid framing around random bodies reaches the inner decoders,
    /// which plain random bytes almost never do.
    #[test]
    fn framed_random_bodies_never_panic(body in vec(any::<u8>(), 0..256), magic in 0usize..5) {
        let magics: [&[u8; 4]; 5] = [b"RFWL", b"RFMF", b"RFHD", b"RFLS", b"RFCK"];
        let mut obj = Vec::new();
        obj.extend_from_slice(magics[magic]);
        obj.extend_from_slice(&1u16.to_le_bytes());
        obj.extend_from_slice(&0u16.to_le_bytes());
        obj.extend_from_slice(&(body.len() as u64).to_le_bytes());
        obj.extend_from_slice(&body);
        let crc = reef_format::crc32(&obj);
        obj.extend_from_slice(&crc.to_le_bytes());
        let obj = Bytes::from(obj);
        for kind in ["wal", "manifest", "head", "lease", "checkpoint"] {
            let _ = common::decode_fully(kind, &obj);
        }
    }
}
