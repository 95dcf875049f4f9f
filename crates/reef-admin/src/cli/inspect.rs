//! `reef inspect <object-key>`: a readable dump of any Reef object (kind
//! from its key; header fields, footer, index, first entries, setsums) as
//! one JSON object, for debugging. The object is decoded with the same
//! checks every reader applies, so a damaged one is refused with the
//! reason (exit 70), never dumped as if it were sound.

use anyhow::{Context, Result, bail};
use reef_format::segment::Segment;
use reef_format::{
    Checkpoint, Entry, EntryValue, Head, Lease, Manifest, WalRecord, decode_document,
    document_to_json,
};
use reef_manifest::Layout;
use reef_manifest::store::DynStore;
use serde_json::{Value as Json, json};

use super::exit::{InputError, NotFound};

/// Entries shown from the start of a WAL record or segment.
const ENTRIES_SHOWN: usize = 10;

/// Reads `key` and returns its dump.
pub async fn run(store: &DynStore, key: &str) -> Result<Json> {
    let ns = key
        .strip_prefix("ns/")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| {
            InputError(format!(
                "{key:?} is not a Reef object key (ns/<namespace>/...)"
            ))
        })?;
    let layout = Layout::new(ns)?;
    let Some(obj) = store.get(key).await? else {
        return Err(NotFound(format!("{key}: no such object")).into());
    };
    let bytes = obj.bytes;
    let size = bytes.len();
    let mut out = if key == layout.head_key() {
        let h = Head::decode(&bytes, key)?;
        json!({"kind": "head", "manifest_version": h.manifest_version})
    } else if layout.parse_manifest_key(key).is_some() {
        manifest_json(&Manifest::decode(&bytes, key)?)
    } else if layout.parse_wal_key(key).is_some() {
        wal_json(&WalRecord::decode(&bytes, key)?, key)?
    } else if layout.parse_segment_key(key).is_some() {
        segment_json(Segment::open(bytes, key)?, key)?
    } else if layout.parse_lease_key(key).is_some() {
        let l = Lease::decode(&bytes, key)?;
        json!({"kind": "lease", "holder": l.holder, "manifest_version": l.manifest_version,
               "renewed_at_ms": l.renewed_at_ms, "expires_at_ms": l.expires_at_ms})
    } else if layout.parse_checkpoint_key(key).is_some() {
        let c = Checkpoint::decode(&bytes, key)?;
        json!({"kind": "checkpoint", "name": c.name, "manifest_version": c.manifest_version,
               "created_at_ms": c.created_at_ms})
    } else {
        bail!(InputError(format!("{key}: not an object kind Reef writes")));
    };
    if let Some(map) = out.as_object_mut() {
        map.insert("key".to_owned(), json!(key));
        map.insert("bytes".to_owned(), json!(size));
    }
    Ok(out)
}

fn entry_json(e: &Entry, key: &str) -> Result<Json> {
    Ok(match &e.value {
        EntryValue::Put(doc) => json!({
            "id": e.id, "version": e.version,
            "doc": document_to_json(&decode_document(doc, key)?),
        }),
        EntryValue::Delete => json!({"id": e.id, "version": e.version, "deleted": true}),
    })
}

fn manifest_json(m: &Manifest) -> Json {
    let segments: Vec<Json> = m
        .segments
        .iter()
        .map(|s| {
            json!({
                "id": format!("{:032x}", s.id), "level": s.level, "bytes": s.object_bytes,
                "entries": s.entry_count, "tombstones": s.tombstone_count,
                "versions": [s.min_version, s.max_version], "ids": [s.min_id, s.max_id],
                "setsum": s.setsum.to_hex(),
            })
        })
        .collect();
    let (live, live_count) = m.live();
    json!({
        "kind": "manifest", "version": m.version, "last_applied_lsn": m.last_applied_lsn,
        "last_version": m.last_version, "created_at_ms": m.created_at_ms, "gc_floor": m.gc_floor,
        "idempotency_retention_ms": m.idempotency_retention_ms,
        "idempotency_records": m.idempotency.len(), "recent_writers": m.recent_writers.len(),
        "totals": {
            "written": m.totals.written.to_hex(), "written_count": m.totals.written_count,
            "dropped": m.totals.dropped.to_hex(), "dropped_count": m.totals.dropped_count,
            "live": live.to_hex(), "live_count": live_count,
        },
        "segments": segments,
    })
}

fn wal_json(r: &WalRecord, key: &str) -> Result<Json> {
    let requests: Vec<Json> = r
        .requests
        .iter()
        .map(|q| json!({"idempotency_key": q.idempotency_key, "ops": q.ops.len(), "skipped": q.skipped}))
        .collect();
    let entries = r
        .entries()
        .take(ENTRIES_SHOWN)
        .map(|e| entry_json(e, key))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "kind": "wal", "lsn": r.lsn, "writer_id": format!("{:016x}", r.writer_id),
        "timestamp_ms": r.timestamp_ms, "requests": requests,
        "entry_count": r.entries().count(), "first_entries": entries,
    }))
}

fn segment_json(seg: Segment, key: &str) -> Result<Json> {
    let f = seg.footer().clone();
    let mut first = Vec::new();
    for e in seg.iter().take(ENTRIES_SHOWN) {
        first.push(entry_json(&e.context("reading an entry")?, key)?);
    }
    Ok(json!({
        "kind": "segment", "format_version": f.version, "entries": f.entry_count,
        "tombstones": f.tombstone_count, "blocks": f.block_count,
        "index": {"offset": f.index_offset, "bytes": f.index_len},
        "bloom": {"offset": f.bloom_offset, "bytes": f.bloom_len},
        "versions": [f.min_version, f.max_version], "ids": [f.min_id, f.max_id],
        "setsum": f.setsum.to_hex(), "first_entries": first,
    }))
}
