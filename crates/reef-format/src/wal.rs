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
use crate::limits::{DOC_BYTES_HARD_MAX, IDEMPOTENCY_KEY_BYTES_HARD_MAX, OPS_PER_REQUEST_HARD_MAX};
use crate::request::OpKind;
use crate::setsum::{SETSUM_BYTES, Setsum};

/// Current WAL record format version.
pub const WAL_FORMAT_VERSION: u16 = 1;
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

/// A WAL record: the unit of durability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Log sequence number; equals the number in the object key.
    pub lsn: u64,
    /// Epoch of the writer that committed it (DESIGN §3.2 fencing).
    pub writer_epoch: u64,
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
        self.check_versions(FormatError::invalid)?;
        let mut w = Writer::with_capacity(256);
        w.u64(self.lsn);
        w.u64(self.writer_epoch);
        w.u64(self.timestamp_ms);
        w.bytes(&self.setsum().to_bytes());
        w.count("requests", self.requests.len())?;
        for (ri, req) in self.requests.iter().enumerate() {
            match &req.idempotency_key {
                None => w.u8(0),
                Some(key) => {
                    w.u8(1);
                    w.bytes16(&format!("requests[{ri}].idempotency_key"), key.as_bytes())?;
                }
            }
            w.u128(req.fingerprint);
            w.u32(req.skipped);
            w.count(&format!("requests[{ri}].ops"), req.ops.len())?;
            for (oi, op) in req.ops.iter().enumerate() {
                let field = format!("requests[{ri}].ops[{oi}]");
                w.u8(op.kind.tag());
                w.bytes16(&format!("{field}.id"), op.entry.id.as_bytes())?;
                w.u64(op.entry.version);
                if let EntryValue::Put(doc) = &op.entry.value {
                    w.bytes32(&format!("{field}.doc"), doc)?;
                }
            }
        }
        WAL_FRAME.seal(w.as_slice())
    }

    /// Checks the frame and decodes a record. `object` is the object key,
    /// named in every error. Documents are sliced out of `bytes` without
    /// copying.
    pub fn decode(bytes: &Bytes, object: &str) -> Result<WalRecord> {
        let body = WAL_FRAME.open(bytes, object)?;
        let base = crate::frame::HEADER_BYTES as u64;
        let mut r = Reader::new(body, ObjectKind::Wal, object, base);
        let lsn = r.u64("lsn")?;
        let writer_epoch = r.u64("writer_epoch")?;
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
            writer_epoch,
            timestamp_ms,
            requests,
        };
        let corrupt = |_: String, reason: String| FormatError::Corrupt {
            kind: ObjectKind::Wal,
            object: object.to_owned(),
            offset: base,
            reason,
        };
        record.check_versions(corrupt)?;
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

    fn check_versions(&self, err: impl Fn(String, String) -> FormatError) -> Result<()> {
        let mut last: Option<u64> = None;
        for (ri, req) in self.requests.iter().enumerate() {
            for (oi, op) in req.ops.iter().enumerate() {
                let field = format!("requests[{ri}].ops[{oi}]");
                if last.is_some_and(|l| op.entry.version <= l) {
                    return Err(err(
                        field,
                        format!("version {} does not increase", op.entry.version),
                    ));
                }
                last = Some(op.entry.version);
                if (op.kind == OpKind::Delete) != op.entry.is_tombstone() {
                    return Err(err(
                        field,
                        format!("{} op with mismatched value", op.kind.name()),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn decode_request(r: &mut Reader<'_>, whole: &Bytes) -> Result<WalRequest> {
    let idempotency_key = match r.u8("has_key")? {
        0 => None,
        1 => {
            let key = r.str16("idempotency_key")?;
            if key.len() > IDEMPOTENCY_KEY_BYTES_HARD_MAX {
                return Err(r.corrupt(format!("idempotency key of {} bytes", key.len())));
            }
            Some(key.to_owned())
        }
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
        if id.is_empty() {
            return Err(r.corrupt("empty id"));
        }
        let version = r.u64("version")?;
        let value = if kind == OpKind::Delete {
            EntryValue::Delete
        } else {
            let doc = r.bytes32("doc")?;
            if doc.len() > DOC_BYTES_HARD_MAX {
                return Err(r.corrupt(format!("document of {} bytes", doc.len())));
            }
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
            writer_epoch: 2,
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
    fn kind_must_match_value() {
        let mut rec = record();
        rec.requests[0].ops[1].kind = OpKind::Upsert;
        assert!(rec.encode().is_err());
    }
}
