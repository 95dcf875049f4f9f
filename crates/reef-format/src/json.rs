//! Conversion between `Value` and JSON (`serde_json::Value`).
//!
//! JSON has no bytes type, so `Value::Bytes` is written as an object with
//! the single key `"$bytes"` holding standard padded base64, and such an
//! object is read back as bytes.
//!
//! Numbers are kept exactly (serde_json's `arbitrary_precision` hands over
//! their text): an integer literal that fits `i64` becomes `I64`, any other
//! integer literal is refused (never rounded into a float); a literal with
//! a fraction or exponent becomes the correctly rounded `F64`, `-0.0`
//! included, and is written back in the shortest form that reads back to
//! the same double. [`parse_json`] also refuses duplicate object keys,
//! which serde_json would resolve silently (the last one wins).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

use crate::error::{FormatError, Result};
use crate::limits::VALUE_DEPTH_MAX;
use crate::value::{Document, Value};

const BYTES_KEY: &str = "$bytes";

/// Converts a JSON object into a document. `field` names the input for
/// error messages (e.g. `line 3: doc`).
pub fn document_from_json(json: &Json, field: &str) -> Result<Document> {
    match json {
        Json::Object(map) => object_from_json(map, field, 1),
        other => Err(FormatError::invalid(
            field,
            format!("must be a JSON object, found {}", json_type_name(other)),
        )),
    }
}

/// A document from any `T: Serialize` that serializes as a map (a struct,
/// a map): through the same JSON rules as the CLI's input (integers stay
/// integers, floats are finite, keys are unique).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct User { name: String, age: u32 }
/// let doc = reef_format::to_document(&User { name: "ada".into(), age: 36 }).unwrap();
/// let back: User = reef_format::from_document(&doc).unwrap();
/// assert_eq!(back, User { name: "ada".into(), age: 36 });
/// ```
pub fn to_document<T: serde::Serialize + ?Sized>(value: &T) -> Result<Document> {
    let json = serde_json::to_value(value)
        .map_err(|e| FormatError::invalid("document", format!("cannot serialize: {e}")))?;
    document_from_json(&json, "document")
}

/// A `T: Deserialize` from a document (the inverse of [`to_document`]).
pub fn from_document<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T> {
    serde_json::from_value(document_to_json(doc))
        .map_err(|e| FormatError::invalid("document", format!("does not fit the type: {e}")))
}

/// Converts a document into a JSON object.
pub fn document_to_json(doc: &Document) -> Json {
    Json::Object(
        doc.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// Converts one value into JSON.
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::Number(Number::from(*i)),
        // Non-finite floats never enter a Value (encode and decode refuse
        // them); null keeps this total for hand-built values.
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => {
            let mut m = Map::new();
            m.insert(BYTES_KEY.to_owned(), Json::String(base64_encode(b)));
            Json::Object(m)
        }
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Object(map) => document_to_json(map),
    }
}

fn object_from_json(map: &Map<String, Json>, field: &str, depth: usize) -> Result<Document> {
    if depth > VALUE_DEPTH_MAX {
        return Err(FormatError::invalid(
            field,
            format!("nesting deeper than {VALUE_DEPTH_MAX} levels"),
        ));
    }
    map.iter()
        .map(|(k, v)| {
            Ok((
                k.clone(),
                value_from_json(v, &format!("{field}.{k}"), depth)?,
            ))
        })
        .collect()
}

fn value_from_json(json: &Json, field: &str, depth: usize) -> Result<Value> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number_from_json(n, field)?,
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => {
            if depth + 1 > VALUE_DEPTH_MAX {
                return Err(FormatError::invalid(
                    field,
                    format!("nesting deeper than {VALUE_DEPTH_MAX} levels"),
                ));
            }
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| value_from_json(v, &format!("{field}[{i}]"), depth + 1))
                    .collect::<Result<_>>()?,
            )
        }
        Json::Object(map) => match (map.len(), map.get(BYTES_KEY)) {
            (1, Some(Json::String(b64))) => Value::Bytes(base64_decode(b64).ok_or_else(|| {
                FormatError::invalid(field, "\"$bytes\" is not valid padded base64")
            })?),
            _ => Value::Object(object_from_json(map, field, depth + 1)?),
        },
    })
}

fn number_from_json(n: &Number, field: &str) -> Result<Value> {
    let text = n.as_str();
    if !text.contains(['.', 'e', 'E']) {
        return text.parse::<i64>().map(Value::I64).map_err(|_| {
            FormatError::invalid(
                field,
                format!(
                    "integer {text} is outside the 64-bit signed range \
                     [-9223372036854775808, 9223372036854775807]; write it as a string"
                ),
            )
        });
    }
    // Rust's parser is correctly rounded: the nearest double, always.
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::F64(f)),
        _ => Err(FormatError::invalid(
            field,
            format!("number {text} is beyond the range of a 64-bit float"),
        )),
    }
}

/// Parses one JSON text, refusing duplicate object keys anywhere in it.
/// The error is serde_json's (with line and column); a duplicate reads
/// `duplicate key "k"`.
pub fn parse_json(text: &str) -> std::result::Result<Json, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    NoDuplicateKeys.deserialize(&mut de)?;
    de.end()?;
    serde_json::from_str(text)
}

/// Walks a JSON text without building it, failing on a duplicate key.
struct NoDuplicateKeys;

impl<'de> DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }

    // (With `arbitrary_precision` a number arrives as a one-entry map
    // holding its text; one key is never a duplicate.)
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key {key:?}"
                )));
            }
            map.next_value_seed(NoDuplicateKeys)?;
        }
        Ok(())
    }
}

/// How a JSON value's type reads in an error message ("an array", ...).
pub fn json_type_name(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_char(sextet: u32) -> char {
    char::from(B64.get((sextet & 63) as usize).copied().unwrap_or(b'A'))
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [0, 1, 2].map(|i| u32::from(chunk.get(i).copied().unwrap_or(0)));
        let n = (b[0] << 16) | (b[1] << 8) | b[2];
        out.push(b64_char(n >> 18));
        out.push(b64_char(n >> 12));
        out.push(if chunk.len() > 1 {
            b64_char(n >> 6)
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { b64_char(n) } else { '=' });
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (qi, quad) in bytes.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in quad.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                B64.iter().position(|&a| a == c)? as u32
            };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Refuse non-canonical encodings whose padding bits are not zero, so
        // that decoding and re-encoding is the identity.
        let kept = 3 - pad;
        if decoded
            .get(kept..)
            .is_some_and(|rest| rest.iter().any(|&b| b != 0))
        {
            return None;
        }
        out.extend_from_slice(decoded.get(..kept)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("Zg=").is_none());
        assert!(base64_decode("Zh==").is_none(), "non-zero padding bits");
        assert!(base64_decode("Zg==Zg==").is_none(), "padding mid-string");
    }

    #[test]
    fn json_round_trip_keeps_types() {
        let j = json!({"i": -3, "f": 1.5, "s": "x", "n": null, "b": true,
                       "a": [1, {"k": "v"}], "raw": {"$bytes": "AAEC"}});
        let doc = document_from_json(&j, "doc").unwrap();
        assert_eq!(doc["i"], Value::I64(-3));
        assert_eq!(doc["f"], Value::F64(1.5));
        assert_eq!(doc["raw"], Value::Bytes(vec![0, 1, 2]));
        assert_eq!(document_to_json(&doc), j);
    }

    #[test]
    fn bad_json_is_named() {
        let err = document_from_json(&json!([1]), "line 3: doc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3: doc") && err.contains("an array"),
            "{err}"
        );
        let err = document_from_json(&json!({"big": u64::MAX}), "doc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("doc.big") && err.contains("64-bit signed range"),
            "{err}"
        );
        let err = document_from_json(&json!({"x": {"$bytes": "!"}}), "doc").unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
