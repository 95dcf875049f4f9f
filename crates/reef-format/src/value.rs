//! The document model and its canonical binary encoding.
//!
//! A `Document` is a JSON-like object of attributes. Its encoding is
//! canonical: object keys are written in strictly increasing byte order (a
//! `BTreeMap` gives that for free), so equal documents encode to equal bytes
//! and the setsum of an entry does not depend on who encoded it.
//!
//! Invariants: `decode_document` never panics and never recurses deeper
//! than `VALUE_DEPTH_MAX`; it rejects non-canonical bytes (unsorted or
//! duplicate keys, non-finite floats, invalid UTF-8), so every accepted
//! encoding is the unique encoding of its value.

use std::collections::BTreeMap;

use crate::codec::{Reader, Writer};
use crate::error::{FormatError, ObjectKind, Result};
use crate::limits::{ATTR_NAME_BYTES_MAX, DOC_BYTES_HARD_MAX, Limits, VALUE_DEPTH_MAX};

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// JSON null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A finite 64-bit float (NaN and infinities are refused).
    F64(f64),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes (JSON form: `{"$bytes": "<base64>"}`).
    Bytes(Vec<u8>),
    /// An ordered list.
    Array(Vec<Value>),
    /// A map from attribute name to value, ordered by name bytes.
    Object(BTreeMap<String, Value>),
}

/// A document: the attributes stored under one id.
pub type Document = BTreeMap<String, Value>;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_I64: u8 = 3;
const TAG_F64: u8 = 4;
const TAG_STRING: u8 = 5;
const TAG_BYTES: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_OBJECT: u8 = 8;

/// Encodes a document canonically, enforcing `limits.doc_bytes_max`,
/// attribute-name length, float finiteness and nesting depth.
pub fn encode_document(doc: &Document, limits: &Limits) -> Result<Vec<u8>> {
    // Sized exactly before it is written: one allocation, where growing by
    // doubling took a realloc per doubling and one more to give the slack
    // back (the bytes live on in the memtable, whose budget counts their
    // length). Those reallocs, each under glibc's arena lock, were a tenth
    // of the CPU of 64 writers on tmpfs. A document past the limit or too
    // deep keeps the small start: it fails below and must not reserve its
    // whole size first.
    let capacity = match object_len(doc, 1) {
        Some(n) if n <= limits.doc_bytes_max => n,
        _ => 64,
    };
    let mut w = Writer::with_capacity(capacity);
    encode_object(&mut w, doc, 1, "doc")?;
    let mut bytes = w.into_vec();
    // A no-op when the size above was exact (it is, for every document
    // that encodes; `encoded_len_is_exact` pins that).
    bytes.shrink_to_fit();
    if bytes.len() > limits.doc_bytes_max {
        return Err(FormatError::invalid(
            "doc",
            format!(
                "encoded document is {} bytes, limit is {}",
                bytes.len(),
                limits.doc_bytes_max
            ),
        ));
    }
    Ok(bytes)
}

/// Decodes a document encoded by `encode_document`. `object` names the
/// enclosing object for error messages.
pub fn decode_document(bytes: &[u8], object: &str) -> Result<Document> {
    if bytes.len() > DOC_BYTES_HARD_MAX {
        return Err(FormatError::Corrupt {
            kind: ObjectKind::Document,
            object: object.to_owned(),
            offset: 0,
            reason: format!(
                "document of {} bytes exceeds {DOC_BYTES_HARD_MAX}",
                bytes.len()
            ),
        });
    }
    let mut r = Reader::new(bytes, ObjectKind::Document, object, 0);
    let tag = r.u8("document tag")?;
    if tag != TAG_OBJECT {
        return Err(r.corrupt(format!("document must be an object, found tag {tag}")));
    }
    let doc = decode_object(&mut r, 1)?;
    r.finish("document")?;
    Ok(doc)
}

/// Whether `bytes` can be a document encoding at all (cheap check used by
/// containers; `decode_document` does the full validation).
pub(crate) fn is_document_encoding(bytes: &[u8]) -> bool {
    bytes.first() == Some(&TAG_OBJECT)
}

fn encode_object(w: &mut Writer, map: &Document, depth: usize, path: &str) -> Result<()> {
    check_depth(depth, path)?;
    w.u8(TAG_OBJECT);
    w.count(path, map.len())?;
    for (key, value) in map {
        if key.len() > ATTR_NAME_BYTES_MAX {
            return Err(FormatError::invalid(
                path,
                format!(
                    "attribute name of {} bytes exceeds {ATTR_NAME_BYTES_MAX}",
                    key.len()
                ),
            ));
        }
        w.bytes32(path, key.as_bytes())?;
        encode_value(w, value, depth, path, key)?;
    }
    Ok(())
}

fn encode_value(w: &mut Writer, v: &Value, depth: usize, path: &str, key: &str) -> Result<()> {
    match v {
        Value::Null => w.u8(TAG_NULL),
        Value::Bool(false) => w.u8(TAG_FALSE),
        Value::Bool(true) => w.u8(TAG_TRUE),
        Value::I64(i) => {
            w.u8(TAG_I64);
            w.u64(*i as u64);
        }
        Value::F64(f) => {
            if !f.is_finite() {
                return Err(FormatError::invalid(
                    format!("{path}.{key}"),
                    format!("float {f} is not finite"),
                ));
            }
            w.u8(TAG_F64);
            // The exact bits, -0.0 included: a value reads back as written.
            // (WAL v1 and segment v1 canonicalised -0.0 to 0.0.)
            w.u64(f.to_bits());
        }
        Value::String(s) => {
            w.u8(TAG_STRING);
            w.bytes32(path, s.as_bytes())?;
        }
        Value::Bytes(b) => {
            w.u8(TAG_BYTES);
            w.bytes32(path, b)?;
        }
        Value::Array(items) => {
            check_depth(depth + 1, path)?;
            w.u8(TAG_ARRAY);
            w.count(path, items.len())?;
            for item in items {
                encode_value(w, item, depth + 1, path, key)?;
            }
        }
        Value::Object(map) => encode_object(w, map, depth + 1, &format!("{path}.{key}"))?,
    }
    Ok(())
}

/// The encoded size of an object at `depth`, as `encode_object` writes it;
/// `None` past `VALUE_DEPTH_MAX` (the encoding fails there), so a hostile
/// nesting cannot recurse without bound here either.
fn object_len(map: &Document, depth: usize) -> Option<usize> {
    if depth > VALUE_DEPTH_MAX {
        return None;
    }
    // Tag and count, then per attribute a 4-byte name length, the name and
    // the value.
    map.iter().try_fold(5usize, |n, (key, value)| {
        Some(
            n.saturating_add(4)
                .saturating_add(key.len())
                .saturating_add(value_len(value, depth)?),
        )
    })
}

/// The encoded size of `v` inside an object at `depth` (see `encode_value`).
fn value_len(v: &Value, depth: usize) -> Option<usize> {
    Some(match v {
        Value::Null | Value::Bool(_) => 1,
        Value::I64(_) | Value::F64(_) => 9,
        Value::String(s) => 5usize.saturating_add(s.len()),
        Value::Bytes(b) => 5usize.saturating_add(b.len()),
        Value::Array(items) => {
            if depth + 1 > VALUE_DEPTH_MAX {
                return None;
            }
            items.iter().try_fold(5usize, |n, item| {
                Some(n.saturating_add(value_len(item, depth + 1)?))
            })?
        }
        Value::Object(map) => object_len(map, depth + 1)?,
    })
}

fn check_depth(depth: usize, path: &str) -> Result<()> {
    if depth > VALUE_DEPTH_MAX {
        return Err(FormatError::invalid(
            path,
            format!("nesting deeper than {VALUE_DEPTH_MAX} levels"),
        ));
    }
    Ok(())
}

fn decode_object(r: &mut Reader<'_>, depth: usize) -> Result<Document> {
    if depth > VALUE_DEPTH_MAX {
        return Err(r.corrupt(format!("nesting deeper than {VALUE_DEPTH_MAX}")));
    }
    // Each attribute needs at least a 4-byte name length and a 1-byte tag.
    let n = r.count("object size", usize::MAX, 5)?;
    let mut map = Document::new();
    let mut last: Option<&str> = None;
    for _ in 0..n {
        let key = r.str32("attribute name")?;
        if key.len() > ATTR_NAME_BYTES_MAX {
            return Err(r.corrupt(format!("attribute name of {} bytes", key.len())));
        }
        if last.is_some_and(|prev| prev >= key) {
            return Err(r.corrupt(format!("attribute {key:?} out of order or duplicated")));
        }
        last = Some(key);
        let value = decode_value(r, depth)?;
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

fn decode_value(r: &mut Reader<'_>, depth: usize) -> Result<Value> {
    let tag = r.u8("value tag")?;
    Ok(match tag {
        TAG_NULL => Value::Null,
        TAG_FALSE => Value::Bool(false),
        TAG_TRUE => Value::Bool(true),
        TAG_I64 => Value::I64(r.u64("i64")? as i64),
        TAG_F64 => {
            let bits = r.u64("f64")?;
            let f = f64::from_bits(bits);
            if !f.is_finite() {
                return Err(r.corrupt("non-finite float"));
            }
            Value::F64(f)
        }
        TAG_STRING => Value::String(r.str32("string")?.to_owned()),
        TAG_BYTES => Value::Bytes(r.bytes32("bytes")?.to_vec()),
        TAG_ARRAY => {
            if depth + 1 > VALUE_DEPTH_MAX {
                return Err(r.corrupt(format!("nesting deeper than {VALUE_DEPTH_MAX}")));
            }
            let n = r.count("array length", usize::MAX, 1)?;
            // Capped: every nesting level could claim the whole remainder.
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(decode_value(r, depth + 1)?);
            }
            Value::Array(items)
        }
        TAG_OBJECT => Value::Object(decode_object(r, depth + 1)?),
        other => return Err(r.corrupt(format!("unknown value tag {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pairs: &[(&str, Value)]) -> Document {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn encoding_is_byte_exact() {
        let d = doc(&[("a", Value::I64(-1)), ("b", Value::Bool(true))]);
        let bytes = encode_document(&d, &Limits::default()).unwrap();
        let expected: Vec<u8> = [
            vec![TAG_OBJECT, 2, 0, 0, 0],
            vec![
                1, 0, 0, 0, b'a', TAG_I64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            vec![1, 0, 0, 0, b'b', TAG_TRUE],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode_document(&bytes, "t").unwrap(), d);
    }

    #[test]
    fn negative_zero_is_kept() {
        let neg = doc(&[("z", Value::F64(-0.0))]);
        let pos = doc(&[("z", Value::F64(0.0))]);
        let limits = Limits::default();
        let neg_bytes = encode_document(&neg, &limits).unwrap();
        assert_ne!(neg_bytes, encode_document(&pos, &limits).unwrap());
        match decode_document(&neg_bytes, "t").unwrap().get("z") {
            Some(Value::F64(f)) => assert!(f.is_sign_negative() && *f == 0.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsorted_keys_are_refused() {
        let mut bytes = vec![TAG_OBJECT, 2, 0, 0, 0];
        bytes.extend_from_slice(&[1, 0, 0, 0, b'b', TAG_NULL, 1, 0, 0, 0, b'a', TAG_NULL]);
        assert!(decode_document(&bytes, "t").unwrap_err().is_corruption());
    }

    #[test]
    fn non_finite_floats_are_refused_both_ways() {
        let d = doc(&[("x", Value::F64(f64::NAN))]);
        assert!(matches!(
            encode_document(&d, &Limits::default()),
            Err(FormatError::Invalid { .. })
        ));
        let mut bytes = vec![TAG_OBJECT, 1, 0, 0, 0, 1, 0, 0, 0, b'x', TAG_F64];
        bytes.extend_from_slice(&f64::INFINITY.to_bits().to_le_bytes());
        assert!(decode_document(&bytes, "t").unwrap_err().is_corruption());
    }

    #[test]
    fn encoded_len_is_exact() {
        let inner = doc(&[
            ("", Value::String(String::new())),
            ("é", Value::Bytes(vec![0, 1, 2])),
        ]);
        // An array chain and an object chain, each as deep as an encodable
        // document may go.
        let mut nested = Value::Null;
        for _ in 0..VALUE_DEPTH_MAX - 1 {
            nested = Value::Array(vec![nested, Value::I64(7)]);
        }
        let mut objects = Value::Bool(true);
        for _ in 0..VALUE_DEPTH_MAX - 1 {
            objects = Value::Object(doc(&[("o", objects), ("p", Value::Null)]));
        }
        let docs = [
            Document::new(),
            doc(&[
                ("a", Value::Null),
                ("b", Value::Bool(false)),
                ("c", Value::I64(-1)),
                ("d", Value::F64(-0.0)),
                ("e", Value::String("ünïcode ✓".to_owned())),
                ("f", Value::Array(vec![])),
                ("g", Value::Object(inner.clone())),
                (
                    "h",
                    Value::Array(vec![Value::Object(inner), Value::Bool(true)]),
                ),
            ]),
            doc(&[("deep", nested)]),
            doc(&[("deep", objects.clone())]),
        ];
        for d in &docs {
            let bytes = encode_document(d, &Limits::default()).unwrap();
            assert_eq!(object_len(d, 1), Some(bytes.len()), "{d:?}");
        }
        let mut too_deep = Value::Null;
        for _ in 0..VALUE_DEPTH_MAX + 1 {
            too_deep = Value::Array(vec![too_deep]);
        }
        assert_eq!(object_len(&doc(&[("x", too_deep)]), 1), None);
        let too_deep = Value::Object(doc(&[("o", objects)]));
        assert!(encode_document(&doc(&[("x", too_deep.clone())]), &Limits::default()).is_err());
        assert_eq!(object_len(&doc(&[("x", too_deep)]), 1), None);
    }

    #[test]
    fn depth_is_bounded_both_ways() {
        let mut v = Value::Null;
        for _ in 0..VALUE_DEPTH_MAX + 1 {
            v = Value::Array(vec![v]);
        }
        let d = doc(&[("deep", v)]);
        assert!(encode_document(&d, &Limits::default()).is_err());
        // A hand-made chain of nested arrays deeper than the limit.
        let mut bytes = vec![TAG_OBJECT, 1, 0, 0, 0, 1, 0, 0, 0, b'd'];
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[TAG_ARRAY, 1, 0, 0, 0]);
        }
        bytes.push(TAG_NULL);
        assert!(decode_document(&bytes, "t").unwrap_err().is_corruption());
    }

    #[test]
    fn document_size_limit_is_enforced() {
        let limits = Limits {
            doc_bytes_max: 16,
            ..Limits::default()
        };
        let d = doc(&[("s", Value::String("x".repeat(32)))]);
        let err = encode_document(&d, &limits).unwrap_err().to_string();
        assert!(err.contains("limit is 16"), "{err}");
    }
}
