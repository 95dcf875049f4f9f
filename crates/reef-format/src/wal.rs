//! The WAL record: one object per committed group of requests (group
//! commit), stored at `wal/<lsn>.wal`.
//!
//! A record holds the *resolved* effects of its requests: each op becomes an
//! entry with its assigned version and, for upserts and patches, the whole
//! resulting document. Replay therefore needs no current state and is
//! deterministic (DESIGN §3.5). Per request it also keeps the idempotency key
//! and request fingerprint, so a retry can be answered from the log alone.
//!
//! Invariants checked on encode and again on decode: versions strictly
//! increase across the record; an op's kind agrees with its value (delete
//! ⇔ tombstone); the stored setsum equals the setsum of the entries.

use bytes::Bytes;

use crate::codec::{Reader, Writer};
use crate::entry::{Entry, EntryValue};
use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::FrameSpec;
use crate::limits::{IDEMPOTENCY_KEY_BYTES_HARD_MAX, OPS_PER_REQUEST_HARD_MAX};
use crate::manifest::WriteSummary;
use crate::request::OpKind;
use crate::setsum::{SETSUM_BYTES, Setsum};

/// Current WAL record format version. Version 1 carried a `writer_epoch`
/// after the LSN that nothing ever checked; version 2 dropped it (version
/// 1 records are still read, the field skipped).
pub const WAL_FORMAT_VERSION: u16 = 2;
/// Largest WAL record body: bounds what a decoder will accept.
pub const WAL_BODY_BYTES_MAX: u64 = 1 << 30;
/// Most requests one record may hold.
pub const WAL_REQUESTS_MAX: usize = 1_000_000;

pub(crate) const WAL_FRAME: FrameSpec = FrameSpec {
    kind: ObjectKind::Wal,
    magic: *b"RFWL",
    version: WAL_FORMAT_VERSION,
    body_bytes_max: WAL_BODY_BYTES_MAX,
};

/// One resolved op: what kind of op produced the entry, and the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOp {
    /// The op that produced the entry (a patch stores its resulting doc).
    pub kind: OpKind,
    /// The new version of the id.
    pub entry: Entry,
}

/// One request within a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRequest {
    /// Idempotency key, if the request carried one.
    pub idempotency_key: Option<String>,
    /// `WriteRequest::fingerprint` of the request.
    pub fingerprint: u128,
    /// Patches of missing ids that were skipped.
    pub skipped: u32,
    /// The request's effects in op order.
    pub ops: Vec<WalOp>,
}

impl WalRequest {
    /// The request's result as the write path reports it and the manifest
    /// keeps it for idempotent replay; computed from the record alone, so
    /// the live path and recovery cannot disagree.
    pub fn summary(&self, lsn: u64) -> WriteSummary {
        let mut s = WriteSummary {
            lsn,
            skipped: self.skipped,
            ..WriteSummary::default()
        };
        for op in &self.ops {
            match op.kind {
                OpKind::Upsert => s.upserted += 1,
                OpKind::Patch => s.patched += 1,
                OpKind::Delete => s.deleted += 1,
            }
        }
        // Versions increase through the request (checked), so the first
        // and last ops hold its range.
        s.versions = match (self.ops.first(), self.ops.last()) {
            (Some(first), Some(last)) => Some((first.entry.version, last.entry.version)),
            _ => None,
        };
        s
    }
}

/// A WAL record: the unit of durability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Log sequence number; equals the number in the object key.
    pub lsn: u64,
    /// Random id of the writer instance. Two writers never produce the
    /// same record bytes, so a writer that finds its LSN taken can tell
    /// its own earlier attempt (response lost) from another's record.
    pub writer_id: u64,
    /// Writer's wall clock at commit, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The requests, in commit order.
    pub requests: Vec<WalRequest>,
}

impl WalRecord {
    /// All entries of the record in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.requests
            .iter()
            .flat_map(|r| r.ops.iter().map(|op| &op.entry))
    }

    /// The setsum of all entries.
    pub fn setsum(&self) -> Setsum {
        self.entries()
            .fold(Setsum::EMPTY, |acc, e| acc.add(&e.setsum()))
    }

    /// Encodes and frames the record, checking its invariants first.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check(FormatError::invalid)?;
        let mut w = Writer::with_capacity(256);
        w.u64(self.lsn);
        w.u64(self.writer_id);
        w.u64(self.timestamp_ms);
        w.bytes(&self.setsum().to_bytes());
        // `check` proved every length and count fits its field, so the
        // writes below cannot fail; static field names keep the hot path
        // free of per-op allocations.
        w.count("requests", self.requests.len())?;
        for req in &self.requests {
            match &req.idempotency_key {
                None => w.u8(0),
                Some(key) => {
                    w.u8(1);
                    w.bytes16("idempotency_key", key.as_bytes())?;
                }
            }
            w.u128(req.fingerprint);
            w.u32(req.skipped);
            w.count("ops", req.ops.len())?;
            for op in &req.ops {
                w.u8(op.kind.tag());
                w.bytes16("id", op.entry.id.as_bytes())?;
                w.u64(op.entry.version);
                if let EntryValue::Put(doc) = &op.entry.value {
                    w.bytes32("doc", doc)?;
                }
            }
        }
        WAL_FRAME.seal(w.as_slice())
    }

    /// Checks the frame and decodes a record. `object` is the object key,
    /// named in every error. Documents are sliced out of `bytes` without
    /// copying.
    pub fn decode(bytes: &Bytes, object: &str) -> Result<WalRecord> {
        let (version, body) = WAL_FRAME.open_versioned(bytes, object)?;
        let base = crate::frame::HEADER_BYTES as u64;
        let mut r = Reader::new(body, ObjectKind::Wal, object, base);
        let lsn = r.u64("lsn")?;
        if version == 1 {
            r.u64("writer_epoch (v1, unused)")?;
        }
        let writer_id = r.u64("writer_id")?;
        let timestamp_ms = r.u64("timestamp_ms")?;
        let stored_setsum = r.fixed::<SETSUM_BYTES>("setsum")?;
        let stored_setsum = Setsum::from_bytes(&stored_setsum, ObjectKind::Wal, object)?;
        // A request is at least 1 + 16 + 4 + 4 bytes.
        let n_requests = r.count("requests", WAL_REQUESTS_MAX, 25)?;
        let mut requests = Vec::with_capacity(n_requests);
        for _ in 0..n_requests {
            requests.push(decode_request(&mut r, bytes)?);
        }
        r.finish("wal record")?;
        let record = WalRecord {
            lsn,
            writer_id,
            timestamp_ms,
            requests,
        };
        let corrupt = |_: String, reason: String| FormatError::Corrupt {
            kind: ObjectKind::Wal,
            object: object.to_owned(),
            offset: base,
            reason,
        };
        record.check(corrupt)?;
        let actual = record.setsum();
        if actual != stored_setsum {
            return Err(corrupt(
                String::new(),
                format!(
                    "setsum mismatch: stored {}, entries sum to {}",
                    stored_setsum.to_hex(),
                    actual.to_hex()
                ),
            ));
        }
        Ok(record)
    }

    /// The rules both encoder and decoder enforce, so a writer can never
    /// produce a record its readers refuse: counts and sizes within the
    /// hard caps, non-empty ids, documents that start as objects,
    /// idempotency keys non-empty and unique, versions strictly
    /// increasing, op kinds agreeing with values. Field names are only
    /// formatted on failure.
    fn check(&self, err: impl Fn(String, String) -> FormatError) -> Result<()> {
        if self.requests.len() > WAL_REQUESTS_MAX {
            return Err(err(
                "requests".into(),
                format!("{} requests exceed {WAL_REQUESTS_MAX}", self.requests.len()),
            ));
        }
        let mut keys = std::collections::HashSet::new();
        let mut last: Option<u64> = None;
        for (ri, req) in self.requests.iter().enumerate() {
            if let Some(key) = &req.idempotency_key {
                if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_HARD_MAX {
                    return Err(err(
                        format!("requests[{ri}].idempotency_key"),
                        format!(
                            "{} bytes, must be 1..={IDEMPOTENCY_KEY_BYTES_HARD_MAX}",
                            key.len()
                        ),
                    ));
                }
                if !keys.insert(key.as_str()) {
                    return Err(err(
                        format!("requests[{ri}].idempotency_key"),
                        format!("key {key:?} appears twice in one record"),
                    ));
                }
            }
            if req.ops.len() > OPS_PER_REQUEST_HARD_MAX {
                return Err(err(
                    format!("requests[{ri}].ops"),
                    format!("{} ops exceed {OPS_PER_REQUEST_HARD_MAX}", req.ops.len()),
                ));
            }
            for (oi, op) in req.ops.iter().enumerate() {
                let e = &op.entry;
                let problem = if last.is_some_and(|l| e.version <= l) {
                    Some(format!("version {} does not increase", e.version))
                } else if (op.kind == OpKind::Delete) != e.is_tombstone() {
                    Some(format!("{} op with mismatched value", op.kind.name()))
                } else {
                    e.check_storable().err()
                };
                if let Some(reason) = problem {
                    return Err(err(format!("requests[{ri}].ops[{oi}]"), reason));
                }
                last = Some(e.version);
            }
        }
        Ok(())
    }
}

fn decode_request(r: &mut Reader<'_>, whole: &Bytes) -> Result<WalRequest> {
    let idempotency_key = match r.u8("has_key")? {
        0 => None,
        1 => Some(r.str16("idempotency_key")?.to_owned()),
        other => return Err(r.corrupt(format!("has_key flag {other}"))),
    };
    let fingerprint = r.u128("fingerprint")?;
    let skipped = r.u32("skipped")?;
    // An op is at least 1 + 2 + 8 bytes.
    let n_ops = r.count("ops", OPS_PER_REQUEST_HARD_MAX, 11)?;
    let mut ops = Vec::with_capacity(n_ops);
    for _ in 0..n_ops {
        let tag = r.u8("op kind")?;
        let kind = OpKind::from_tag(tag).ok_or_else(|| r.corrupt(format!("op kind {tag}")))?;
        let id = r.str16("id")?.to_owned();
        let version = r.u64("version")?;
        let value = if kind == OpKind::Delete {
            EntryValue::Delete
        } else {
            let doc = r.bytes32("doc")?;
            // `doc` was sliced from the frame body, itself a sub-slice of
            // `whole`, so `slice_ref` cannot fail.
            EntryValue::Put(whole.slice_ref(doc))
        };
        ops.push(WalOp {
            kind,
            entry: Entry { id, version, value },
        });
    }
    Ok(WalRequest {
        idempotency_key,
        fingerprint,
        skipped,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> WalRecord {
        WalRecord {
            lsn: 7,
            writer_id: 0x5eed,
            timestamp_ms: 1_700_000_000_000,
            requests: vec![
                WalRequest {
                    idempotency_key: Some("k1".into()),
                    fingerprint: 0xabc,
                    skipped: 1,
                    ops: vec![
                        WalOp {
                            kind: OpKind::Upsert,
                            entry: Entry::put("a", 10, &b"\x08\0\0\0\0"[..]),
                        },
                        WalOp {
                            kind: OpKind::Delete,
                            entry: Entry::delete("b", 11),
                        },
                    ],
                },
                WalRequest {
                    idempotency_key: None,
                    fingerprint: 1,
                    skipped: 0,
                    ops: vec![],
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let rec = record();
        let bytes = Bytes::from(rec.encode().unwrap());
        assert_eq!(WalRecord::decode(&bytes, "wal/7").unwrap(), rec);
    }

    #[test]
    fn versions_must_increase() {
        let mut rec = record();
        rec.requests[0].ops[1].entry.version = 10;
        let err = rec.encode().unwrap_err().to_string();
        assert!(
            err.contains("requests[0].ops[1]") && err.contains("does not increase"),
            "{err}"
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would() {
        let mut rec = record();
        rec.requests[1].idempotency_key = Some("k1".into());
        assert!(
            rec.encode()
                .unwrap_err()
                .to_string()
                .contains("appears twice")
        );
        let mut rec = record();
        rec.requests[0].idempotency_key = Some(String::new());
        assert!(rec.encode().is_err());
        let mut rec = record();
        rec.requests[0].ops[0].entry = Entry::put("", 10, &b"\x08\0\0\0\0"[..]);
        assert!(rec.encode().is_err());
        let mut rec = record();
        rec.requests[0].ops[0].entry = Entry::put("a", 10, &b"not a doc"[..]);
        assert!(rec.encode().unwrap_err().to_string().contains("object"));
    }

    #[test]
    fn summary_counts_ops_and_versions() {
        let rec = record();
        let s = rec.requests[0].summary(7);
        assert_eq!(
            (s.lsn, s.versions, s.upserted, s.deleted, s.skipped),
            (7, Some((10, 11)), 1, 1, 1)
        );
        assert_eq!(rec.requests[1].summary(7).versions, None);
    }

    #[test]
    fn kind_must_match_value() {
        let mut rec = record();
        rec.requests[0].ops[1].kind = OpKind::Upsert;
        assert!(rec.encode().is_err());
    }
}
