//! `reef demo`: a one-minute tour for a newcomer. Until the engine lands it
//! shows the codecs doing real work: a write request is validated, resolved
//! and framed as a WAL record, written to `<dir>/ns/demo/wal/`, read back
//! and checked; the entries are folded into a segment, written, reopened
//! and queried; then one flipped byte is caught by the checksum.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use bytes::Bytes;
use reef_format::{
    Entry, Limits, MergeIter, OpKind, Segment, SegmentBuilder, SegmentOptions, Tombstones, WalOp,
    WalRecord, WalRequest, WriteRequest, decode_document, document_from_json, document_to_json,
    encode_document,
};
use serde_json::json;

/// Runs the demo against directory `dir`.
pub fn run(dir: &Path) -> Result<()> {
    let ns = dir.join("ns").join("demo");
    fs::create_dir_all(ns.join("wal")).with_context(|| format!("creating {}", ns.display()))?;
    fs::create_dir_all(ns.join("seg"))?;
    let limits = Limits::default();

    println!("1. A write request of three ops, validated against the limits:");
    let docs = [
        ("user/ada", json!({"name": "Ada Lovelace", "born": 1815})),
        ("user/alan", json!({"name": "Alan Turing", "born": 1912})),
        ("user/grace", json!({"name": "Grace Hopper", "born": 1906})),
    ];
    let mut request = WriteRequest {
        ops: Vec::new(),
        idempotency_key: Some("demo-1".into()),
    };
    for (id, doc) in &docs {
        request.ops.push(reef_format::Op {
            kind: OpKind::Upsert,
            id: (*id).to_owned(),
            doc: Some(document_from_json(doc, "doc")?),
            precondition: Some(reef_format::Precondition::Absent),
        });
        println!("   upsert {id} {doc}");
    }
    let bytes = request.validate(&limits)?;
    println!(
        "   ok: {bytes} bytes, fingerprint {:032x}",
        request.fingerprint()
    );

    println!("2. Committed as WAL record lsn 1 (framed: magic, version, length, CRC):");
    let mut ops = Vec::new();
    for (i, op) in request.ops.iter().enumerate() {
        let doc = op.doc.as_ref().context("upsert without doc")?;
        let encoded = encode_document(doc, &limits)?;
        ops.push(WalOp {
            kind: op.kind,
            entry: Entry::put(op.id.clone(), i as u64 + 1, encoded),
        });
    }
    let record = WalRecord {
        lsn: 1,
        writer_epoch: 1,
        timestamp_ms: 0,
        requests: vec![WalRequest {
            idempotency_key: request.idempotency_key.clone(),
            fingerprint: request.fingerprint(),
            skipped: 0,
            ops,
        }],
    };
    let wal_path = ns.join("wal").join(format!("{:020}.wal", record.lsn));
    let wal_bytes = record.encode()?;
    fs::write(&wal_path, &wal_bytes).with_context(|| format!("writing {}", wal_path.display()))?;
    let read_back = WalRecord::decode(&Bytes::from(fs::read(&wal_path)?), "wal/1")?;
    anyhow::ensure!(
        read_back == record,
        "WAL record changed on the way through the disk"
    );
    println!(
        "   {} ({} bytes), read back and verified, setsum {}",
        wal_path.display(),
        wal_bytes.len(),
        record.setsum().to_hex()
    );

    println!("3. Folded into a sorted, checksummed segment with a bloom filter:");
    let run: Vec<Result<Entry, reef_format::FormatError>> =
        record.entries().cloned().map(Ok).collect();
    let mut builder = SegmentBuilder::new(SegmentOptions::default());
    for entry in MergeIter::visible(vec![run.into_iter()], u64::MAX, Tombstones::Keep) {
        builder.add(&entry?)?;
    }
    let built = builder.finish()?;
    let seg_path = ns.join("seg").join("00000000000000000000000000000001.seg");
    fs::write(&seg_path, &built.bytes)?;
    let segment = Segment::open(Bytes::from(fs::read(&seg_path)?), "seg/1")?;
    let f = segment.footer();
    println!(
        "   {} ({} bytes): {} entries, ids {:?}..={:?}, setsum {} (same as the WAL: content conserved)",
        seg_path.display(),
        built.bytes.len(),
        f.entry_count,
        f.min_id,
        f.max_id,
        f.setsum.to_hex()
    );
    anyhow::ensure!(
        f.setsum == record.setsum(),
        "setsum changed between WAL and segment"
    );

    println!("4. Point lookup and scan served from the segment:");
    let hit = segment
        .get("user/grace", u64::MAX)?
        .context("user/grace missing")?;
    let doc = decode_document(hit.doc().context("tombstone")?, "seg/1")?;
    println!(
        "   get user/grace -> version {} {}",
        hit.version,
        document_to_json(&doc)
    );
    println!(
        "   get user/nobody -> {:?}",
        segment.get("user/nobody", u64::MAX)?.map(|e| e.id)
    );
    for e in segment.range(
        std::ops::Bound::Included("user/al"),
        std::ops::Bound::Excluded("user/b"),
    ) {
        println!("   scan user/al..user/b -> {}", e?.id);
    }

    println!("5. One flipped bit in the stored WAL object is caught, never served:");
    let mut damaged = wal_bytes.clone();
    if let Some(b) = damaged.get_mut(40) {
        *b ^= 0x01;
    }
    match WalRecord::decode(&Bytes::from(damaged), "wal/1") {
        Err(err) => println!("   {err}"),
        Ok(_) => anyhow::bail!("a damaged WAL record decoded"),
    }
    println!("Done. Objects are in {}.", ns.display());
    Ok(())
}
