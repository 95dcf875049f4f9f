//! The write request model: ordered ops with optional preconditions, an
//! optional idempotency key, validation against `Limits`, and the request
//! fingerprint that detects an idempotency key reused with different ops.
//!
//! Invariant: `WriteRequest::validate` is the single gate for user input;
//! anything it accepts can be encoded by every codec in this crate.

use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{FormatError, Result};
use crate::limits::Limits;
use crate::value::{Document, encode_document};

/// What an op does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Replace the whole document.
    Upsert,
    /// RFC 7396 merge patch of an existing document.
    Patch,
    /// Remove the document.
    Delete,
}

impl OpKind {
    pub(crate) fn tag(self) -> u8 {
        match self {
            OpKind::Upsert => 1,
            OpKind::Patch => 2,
            OpKind::Delete => 3,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<OpKind> {
        match tag {
            1 => Some(OpKind::Upsert),
            2 => Some(OpKind::Patch),
            3 => Some(OpKind::Delete),
            _ => None,
        }
    }

    /// The lowercase name used in JSON input (`"upsert"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Upsert => "upsert",
            OpKind::Patch => "patch",
            OpKind::Delete => "delete",
        }
    }
}

/// A condition on the current state of an id, checked before the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// The id must not exist.
    Absent,
    /// The id must exist.
    Exists,
    /// The id must exist at exactly this version.
    Version(u64),
}

/// One op of a write request.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// What to do.
    pub kind: OpKind,
    /// Target document id.
    pub id: String,
    /// The document (upsert) or patch (patch); `None` for delete.
    pub doc: Option<Document>,
    /// Optional precondition.
    pub precondition: Option<Precondition>,
}

impl Op {
    /// Replaces (or creates) document `id`.
    ///
    /// ```
    /// use reef_format::{Document, Op, Precondition, Value};
    /// let doc = Document::from_iter([("n".to_owned(), Value::I64(1))]);
    /// let op = Op::upsert("u1", doc).if_absent();
    /// assert_eq!(op.precondition, Some(Precondition::Absent));
    /// ```
    pub fn upsert(id: impl Into<String>, doc: Document) -> Op {
        Op {
            kind: OpKind::Upsert,
            id: id.into(),
            doc: Some(doc),
            precondition: None,
        }
    }

    /// Applies an RFC 7396 merge `patch` to existing document `id`.
    pub fn patch(id: impl Into<String>, patch: Document) -> Op {
        Op {
            kind: OpKind::Patch,
            id: id.into(),
            doc: Some(patch),
            precondition: None,
        }
    }

    /// Removes document `id`.
    ///
    /// ```
    /// use reef_format::{Op, OpKind};
    /// let op = Op::delete("u1").if_version(7);
    /// assert_eq!(op.kind, OpKind::Delete);
    /// ```
    pub fn delete(id: impl Into<String>) -> Op {
        Op {
            kind: OpKind::Delete,
            id: id.into(),
            doc: None,
            precondition: None,
        }
    }

    /// Only if the id does not exist.
    pub fn if_absent(self) -> Op {
        self.when(Precondition::Absent)
    }

    /// Only if the id exists.
    pub fn if_exists(self) -> Op {
        self.when(Precondition::Exists)
    }

    /// Only if the id exists at exactly `version` (optimistic concurrency).
    pub fn if_version(self, version: u64) -> Op {
        self.when(Precondition::Version(version))
    }

    /// Only if `precondition` holds.
    pub fn when(mut self, precondition: Precondition) -> Op {
        self.precondition = Some(precondition);
        self
    }
}

/// An ordered list of ops applied atomically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRequest {
    /// The ops, applied in order; later ops see earlier ones.
    pub ops: Vec<Op>,
    /// Optional idempotency key.
    pub idempotency_key: Option<String>,
}

/// Checks a document id against the limits.
pub fn validate_id(id: &str, field: &str, limits: &Limits) -> Result<()> {
    if id.is_empty() {
        return Err(FormatError::invalid(field, "id is empty"));
    }
    if id.len() > limits.id_bytes_max {
        return Err(FormatError::invalid(
            field,
            format!("id is {} bytes, limit is {}", id.len(), limits.id_bytes_max),
        ));
    }
    Ok(())
}

impl WriteRequest {
    /// A request of `ops`, applied in order, atomically.
    ///
    /// ```
    /// use reef_format::{Document, Op, WriteRequest};
    /// let req = WriteRequest::new([Op::upsert("a", Document::new()), Op::delete("b")])
    ///     .idempotency_key("order-42");
    /// assert_eq!(req.ops.len(), 2);
    /// ```
    pub fn new(ops: impl IntoIterator<Item = Op>) -> WriteRequest {
        WriteRequest {
            ops: ops.into_iter().collect(),
            idempotency_key: None,
        }
    }

    /// Makes a retry of this request return the original result.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> WriteRequest {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Validates every op against `limits`, naming the first bad field as
    /// `ops[i].<field>`. Returns the request's encoded size in bytes.
    pub fn validate(&self, limits: &Limits) -> Result<usize> {
        self.encode_docs(limits).map(|(_, bytes)| bytes)
    }

    /// Validates the request and encodes each document once, for the
    /// write path to carry (fingerprint, resolution, WAL record) instead
    /// of encoding again at each step. Errors as `validate`.
    ///
    /// ```
    /// use reef_format::{Document, Limits, Op, WriteRequest};
    /// let checked = WriteRequest::new([Op::upsert("a", Document::new())])
    ///     .check(&Limits::default())?;
    /// assert_eq!(checked.fingerprint(), checked.request().fingerprint());
    /// # Ok::<(), reef_format::FormatError>(())
    /// ```
    pub fn check(self, limits: &Limits) -> Result<CheckedRequest> {
        let (docs, bytes) = self.encode_docs(limits)?;
        let fingerprint = fingerprint_of(
            self.ops.len(),
            self.ops.iter().zip(docs.iter().map(Option::as_deref)),
        );
        Ok(CheckedRequest(Arc::new(Checked {
            request: self,
            docs,
            bytes,
            fingerprint,
            limits: limits.clone(),
        })))
    }

    /// Each op's encoded document (`None` for a delete) and the request's
    /// size: ids plus encoded documents.
    fn encode_docs(&self, limits: &Limits) -> Result<(Vec<Option<Bytes>>, usize)> {
        if self.ops.is_empty() {
            return Err(FormatError::invalid(
                "ops",
                "a request needs at least one op",
            ));
        }
        if self.ops.len() > limits.ops_per_request_max {
            return Err(FormatError::invalid(
                "ops",
                format!(
                    "{} ops, limit is {}",
                    self.ops.len(),
                    limits.ops_per_request_max
                ),
            ));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > limits.idempotency_key_bytes_max)
        {
            return Err(FormatError::invalid(
                "idempotency_key",
                format!(
                    "{} bytes, must be 1..={}",
                    key.len(),
                    limits.idempotency_key_bytes_max
                ),
            ));
        }
        let mut total = 0usize;
        let mut docs = Vec::with_capacity(self.ops.len());
        for (i, op) in self.ops.iter().enumerate() {
            // The field's name is only made for an error: a `format!` per
            // op showed in the profile of 64 writers.
            validate_id(&op.id, "", limits).map_err(|e| relabel(e, &format!("ops[{i}].id")))?;
            total += op.id.len();
            match (op.kind, &op.doc) {
                (OpKind::Delete, None) => docs.push(None),
                (OpKind::Delete, Some(_)) => {
                    return Err(FormatError::invalid(
                        format!("ops[{i}].doc"),
                        "delete takes no doc",
                    ));
                }
                (_, None) => {
                    return Err(FormatError::invalid(
                        format!("ops[{i}].doc"),
                        format!("{} needs a doc", op.kind.name()),
                    ));
                }
                (_, Some(doc)) => {
                    let bytes = encode_document(doc, limits)
                        .map_err(|e| relabel(e, &format!("ops[{i}].doc")))?;
                    total += bytes.len();
                    docs.push(Some(Bytes::from(bytes)));
                }
            }
            if total > limits.request_bytes_max {
                return Err(FormatError::invalid(
                    "ops",
                    format!(
                        "request exceeds {} bytes at ops[{i}]",
                        limits.request_bytes_max
                    ),
                ));
            }
        }
        Ok((docs, total))
    }

    /// A 128-bit fingerprint of the ops (not the key): two requests with the
    /// same key are the same request iff their fingerprints match.
    ///
    /// Hashes, per op: kind tag, id, precondition, and the canonical
    /// document encoding (see docs/format.md, "Request fingerprint"). Call
    /// `validate` first: an unencodable document hashes as its error text.
    /// `CheckedRequest::fingerprint` is the same value, computed from the
    /// documents it already encoded.
    pub fn fingerprint(&self) -> u128 {
        // Fingerprints only need encodable documents; the limit here is the
        // codec's own, so validation limits do not change fingerprints
        // (encoding is canonical: a limit only refuses, never reshapes).
        let unbounded = Limits {
            doc_bytes_max: crate::limits::DOC_BYTES_HARD_MAX,
            ..Limits::default()
        };
        let docs: Vec<Option<Vec<u8>>> = self
            .ops
            .iter()
            .map(|op| {
                op.doc.as_ref().map(|doc| {
                    encode_document(doc, &unbounded).unwrap_or_else(|e| e.to_string().into_bytes())
                })
            })
            .collect();
        fingerprint_of(
            self.ops.len(),
            self.ops.iter().zip(docs.iter().map(Option::as_deref)),
        )
    }
}

/// The fingerprint of `n` ops, each with its encoded document.
fn fingerprint_of<'a>(n: usize, ops: impl Iterator<Item = (&'a Op, Option<&'a [u8]>)>) -> u128 {
    let mut h = Xxh3::new();
    h.update(&(n as u64).to_le_bytes());
    for (op, doc) in ops {
        h.update(&[op.kind.tag()]);
        h.update(&(op.id.len() as u64).to_le_bytes());
        h.update(op.id.as_bytes());
        match op.precondition {
            None => h.update(&[0]),
            Some(Precondition::Absent) => h.update(&[1]),
            Some(Precondition::Exists) => h.update(&[2]),
            Some(Precondition::Version(v)) => {
                h.update(&[3]);
                h.update(&v.to_le_bytes());
            }
        }
        match doc {
            None => h.update(&[0]),
            Some(bytes) => {
                h.update(&[1]);
                h.update(&(bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
        }
    }
    h.digest128()
}

/// A request that passed `WriteRequest::check`: its documents encoded once
/// (an upsert's bytes are the WAL entry's), its size and its fingerprint.
/// Cheap to clone (shared), so a caller can retry it without copying.
#[derive(Clone, Debug)]
pub struct CheckedRequest(Arc<Checked>);

#[derive(Debug)]
struct Checked {
    request: WriteRequest,
    docs: Vec<Option<Bytes>>,
    bytes: usize,
    fingerprint: u128,
    limits: Limits,
}

/// Equal when the requests and limits are: the rest is derived from them.
impl PartialEq for CheckedRequest {
    fn eq(&self, other: &Self) -> bool {
        self.0.request == other.0.request && self.0.limits == other.0.limits
    }
}

impl CheckedRequest {
    /// The request as written.
    pub fn request(&self) -> &WriteRequest {
        &self.0.request
    }

    /// Op `i`'s document, encoded (`None` for a delete or past the end).
    pub fn doc(&self, i: usize) -> Option<&Bytes> {
        self.0.docs.get(i).and_then(Option::as_ref)
    }

    /// Encoded size: ids plus documents.
    pub fn bytes(&self) -> usize {
        self.0.bytes
    }

    /// Same as `WriteRequest::fingerprint`.
    pub fn fingerprint(&self) -> u128 {
        self.0.fingerprint
    }

    /// The limits it was checked against.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }
}

fn relabel(e: FormatError, field: &str) -> FormatError {
    match e {
        FormatError::Invalid {
            field: inner,
            reason,
        } => {
            let suffix = inner.strip_prefix("doc").unwrap_or(&inner);
            FormatError::invalid(format!("{field}{suffix}"), reason)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn upsert(id: &str, n: i64) -> Op {
        Op {
            kind: OpKind::Upsert,
            id: id.to_owned(),
            doc: Some([("n".to_owned(), Value::I64(n))].into()),
            precondition: None,
        }
    }

    #[test]
    fn validation_names_the_op() {
        let limits = Limits::default();
        let req = WriteRequest {
            ops: vec![upsert("a", 1), upsert("", 2)],
            idempotency_key: None,
        };
        let err = req.validate(&limits).unwrap_err().to_string();
        assert!(err.contains("ops[1].id") && err.contains("empty"), "{err}");

        let long = "x".repeat(1025);
        let req = WriteRequest {
            ops: vec![upsert(&long, 1)],
            idempotency_key: None,
        };
        let err = req.validate(&limits).unwrap_err().to_string();
        assert!(err.contains("1025 bytes, limit is 1024"), "{err}");

        let mut bad = upsert("a", 1);
        bad.doc = Some([("f".to_owned(), Value::F64(f64::INFINITY))].into());
        let req = WriteRequest {
            ops: vec![bad],
            idempotency_key: None,
        };
        let err = req.validate(&limits).unwrap_err().to_string();
        assert!(err.contains("ops[0].doc.f"), "{err}");
    }

    #[test]
    fn ops_count_and_key_limits() {
        let limits = Limits {
            ops_per_request_max: 2,
            ..Limits::default()
        };
        let req = WriteRequest {
            ops: vec![upsert("a", 1), upsert("b", 1), upsert("c", 1)],
            idempotency_key: None,
        };
        assert!(
            req.validate(&limits)
                .unwrap_err()
                .to_string()
                .contains("3 ops, limit is 2")
        );
        let req = WriteRequest {
            ops: vec![upsert("a", 1)],
            idempotency_key: Some("k".repeat(257)),
        };
        assert!(req.validate(&Limits::default()).is_err());
        let req = WriteRequest {
            ops: vec![],
            idempotency_key: None,
        };
        assert!(req.validate(&Limits::default()).is_err());
    }

    #[test]
    fn fingerprint_ignores_key_but_not_ops() {
        let a = WriteRequest {
            ops: vec![upsert("a", 1)],
            idempotency_key: Some("k".into()),
        };
        let b = WriteRequest {
            ops: vec![upsert("a", 1)],
            idempotency_key: None,
        };
        let c = WriteRequest {
            ops: vec![upsert("a", 2)],
            idempotency_key: Some("k".into()),
        };
        let mut d = a.clone();
        d.ops[0].precondition = Some(Precondition::Version(0));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn a_checked_request_carries_what_validation_encoded() {
        let limits = Limits::default();
        let mut patch = upsert("b", 7);
        patch.kind = OpKind::Patch;
        patch.precondition = Some(Precondition::Exists);
        let req = WriteRequest {
            ops: vec![upsert("a", 1), patch, Op::delete("c").if_version(3)],
            idempotency_key: Some("k".into()),
        };
        let size = req.validate(&limits).unwrap();
        let checked = req.clone().check(&limits).unwrap();
        assert_eq!(checked.fingerprint(), req.fingerprint());
        assert_eq!(checked.bytes(), size);
        for (i, op) in req.ops.iter().enumerate() {
            let expected = op
                .doc
                .as_ref()
                .map(|d| encode_document(d, &limits).unwrap());
            assert_eq!(checked.doc(i).map(|b| b.to_vec()), expected, "op {i}");
        }
        assert_eq!(checked.request(), &req);

        let bad = WriteRequest::new([Op::delete("")]);
        let err = bad.check(&limits).unwrap_err().to_string();
        assert!(err.contains("ops[0].id"), "{err}");
    }
}
