//! Resolving a write request against current state: preconditions, RFC 7396
//! patches, version assignment. Pure (no I/O): the committer first fetches
//! the current entry of every id some op of the batch reads (a patch, a
//! delete, a precondition; an upsert without a precondition never reads
//! its id's base), then resolves requests in order against that base plus
//! the effects of earlier requests.
//!
//! Semantics (docs/semantics.md): ops apply in order and see earlier ops of
//! the same request; a failed precondition rejects the whole request and
//! nothing of it enters the batch; a patch or delete of a missing id is
//! skipped and counted (no version is spent); every applied op gets the
//! next namespace version.

use std::collections::HashMap;

use bytes::Bytes;
use reef_format::{
    CheckedRequest, Entry, OpKind, Precondition, WalOp, WalRequest, decode_document,
    encode_document, merge_patch,
};

use crate::error::{Error, Result};

/// The state of one id: `None` when absent (never written or deleted).
pub(crate) type Current = Option<(u64, Bytes)>;

/// Effects of the requests resolved so far in a batch, over a base. Keyed
/// by the ids the batch's requests hold (borrowed: no copy of each id).
#[derive(Default)]
pub(crate) struct Overlay<'r> {
    ids: HashMap<&'r str, Current>,
}

impl<'r> Overlay<'r> {
    /// Room for `ids` ids without growing.
    pub(crate) fn with_capacity(ids: usize) -> Overlay<'r> {
        Overlay {
            ids: HashMap::with_capacity(ids),
        }
    }

    fn get<'a>(&'a self, id: &str, base: &'a HashMap<String, Current>) -> Option<&'a Current> {
        self.ids.get(id).or_else(|| base.get(id))
    }
}

fn describe(cur: &Current) -> String {
    match cur {
        None => "absent".to_owned(),
        Some((v, _)) => format!("exists at version {v}"),
    }
}

/// Resolves `req` against `base` (the latest entry of every id it
/// reads) and `overlay` (earlier requests of the batch). On success the
/// overlay and `next_version` advance and the WAL form is returned; on
/// failure neither changes. An upsert's entry holds the bytes `check`
/// encoded; only a patch's result is encoded here (against the limits the
/// request was checked with).
pub(crate) fn resolve<'r>(
    namespace: &str,
    checked: &'r CheckedRequest,
    base: &HashMap<String, Current>,
    overlay: &mut Overlay<'r>,
    next_version: &mut u64,
) -> Result<WalRequest> {
    let req = checked.request();
    let limits = checked.limits();
    let mut mine: HashMap<&'r str, Current> = HashMap::new();
    let mut version = *next_version;
    let mut ops = Vec::with_capacity(req.ops.len());
    let mut skipped = 0u32;
    for (i, op) in req.ops.iter().enumerate() {
        let cur: Current = match mine.get(op.id.as_str()) {
            Some(c) => c.clone(),
            None => overlay.get(&op.id, base).cloned().flatten(),
        };
        if let Some(p) = op.precondition {
            let (ok, expected) = match (p, &cur) {
                (Precondition::Absent, c) => (c.is_none(), "absent".to_owned()),
                (Precondition::Exists, c) => (c.is_some(), "exists".to_owned()),
                (Precondition::Version(n), Some((v, _))) => (*v == n, format!("version {n}")),
                (Precondition::Version(n), None) => (false, format!("version {n}")),
            };
            if !ok {
                return Err(Error::PreconditionFailed {
                    namespace: namespace.to_owned(),
                    op_index: i,
                    id: op.id.clone(),
                    expected,
                    actual: describe(&cur),
                });
            }
        }
        let doc_field = || format!("ops[{i}].doc");
        // `check` encoded every doc it accepted: an upsert's bytes are
        // final; a patch's doc is the patch, merged into the current one.
        let new: Option<Bytes> = match (op.kind, &cur, checked.doc(i), &op.doc) {
            (OpKind::Upsert, _, Some(bytes), _) => Some(bytes.clone()),
            (OpKind::Patch, Some((_, bytes)), _, Some(patch)) => {
                let mut doc = decode_document(bytes, &op.id)?;
                merge_patch(&mut doc, patch);
                // A patch can grow a document past the limit.
                Some(Bytes::from(
                    encode_document(&doc, limits)
                        .map_err(|e| relabel(namespace, e, &doc_field()))?,
                ))
            }
            (OpKind::Patch | OpKind::Delete, None, _, _) => {
                skipped += 1;
                continue;
            }
            (OpKind::Delete, Some(_), _, _) => None,
            (OpKind::Upsert | OpKind::Patch, _, _, _) => {
                return Err(Error::Invalid {
                    namespace: namespace.to_owned(),
                    field: doc_field(),
                    reason: format!("{} needs a doc", op.kind.name()),
                });
            }
        };
        let entry = match &new {
            Some(bytes) => Entry::put(op.id.clone(), version, bytes.clone()),
            None => Entry::delete(op.id.clone(), version),
        };
        mine.insert(op.id.as_str(), new.map(|b| (version, b)));
        ops.push(WalOp {
            kind: op.kind,
            entry,
        });
        version += 1;
    }
    overlay.ids.extend(mine);
    *next_version = version;
    Ok(WalRequest {
        idempotency_key: req.idempotency_key.clone(),
        fingerprint: checked.fingerprint(),
        skipped,
        ops,
    })
}

fn relabel(namespace: &str, e: reef_format::FormatError, field: &str) -> Error {
    match e {
        reef_format::FormatError::Invalid {
            field: inner,
            reason,
        } => Error::Invalid {
            namespace: namespace.to_owned(),
            field: format!("{field}{}", inner.strip_prefix("doc").unwrap_or(&inner)),
            reason,
        },
        other => Error::Format(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_format::{Document, Limits, Op, Value, WriteRequest};

    fn doc(n: i64) -> Document {
        [("n".to_owned(), Value::I64(n))].into()
    }

    fn op(kind: OpKind, id: &str, d: Option<Document>, p: Option<Precondition>) -> Op {
        Op {
            kind,
            id: id.into(),
            doc: d,
            precondition: p,
        }
    }

    #[test]
    fn ops_see_earlier_ops_and_failures_change_nothing() {
        let base = HashMap::new();
        let mut overlay = Overlay::default();
        let mut next = 10;
        let limits = Limits::default();
        let req = WriteRequest {
            ops: vec![
                op(
                    OpKind::Upsert,
                    "a",
                    Some(doc(1)),
                    Some(Precondition::Absent),
                ),
                op(
                    OpKind::Patch,
                    "a",
                    Some(doc(2)),
                    Some(Precondition::Version(10)),
                ),
                op(OpKind::Delete, "missing", None, None),
            ],
            idempotency_key: None,
        };
        let req = req.check(&limits).unwrap();
        let w = resolve("ns", &req, &base, &mut overlay, &mut next).unwrap();
        assert_eq!(w.ops.len(), 2);
        assert_eq!((w.skipped, next), (1, 12));

        let bad = WriteRequest {
            ops: vec![
                op(OpKind::Upsert, "b", Some(doc(1)), None),
                op(
                    OpKind::Upsert,
                    "a",
                    Some(doc(3)),
                    Some(Precondition::Version(10)),
                ),
            ],
            idempotency_key: None,
        };
        let bad = bad.check(&limits).unwrap();
        let err = resolve("ns", &bad, &base, &mut overlay, &mut next).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ops[1]")
                && text.contains("expected version 10")
                && text.contains("exists at version 11"),
            "{text}"
        );
        assert_eq!(next, 12, "a rejected request spends no versions");
        assert!(!overlay.ids.contains_key("b"), "and leaves no effects");
    }
}
