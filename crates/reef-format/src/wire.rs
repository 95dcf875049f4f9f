//! Postcard bodies inside the common frame: the manifest (format 3) and the
//! HEAD, lease and checkpoint payloads (format 2).
//!
//! The wire layout of such a body is its Rust type's field order under
//! postcard's rules (docs/format.md, "Postcard bodies"); the golden files
//! pin it byte for byte.
//!
//! Invariant: a body decodes only if it is the canonical encoding of what it
//! decodes to. Postcard alone would accept trailing bytes and over-long
//! varints, so two different byte strings could name one manifest; `decode`
//! re-encodes the value and compares it with the body, without allocating,
//! so every stored object has exactly one spelling and a flipped byte that
//! still parses is caught as corruption.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::HEADER_BYTES;

/// Encodes `value` as a postcard body.
pub(crate) fn encode<T: Serialize>(value: &T, field: &str) -> Result<Vec<u8>> {
    // With an in-memory sink postcard cannot run out of room; an error here
    // would be a type postcard cannot express, which is the encoder's input.
    postcard::to_allocvec(value)
        .map_err(|e| FormatError::invalid(field, format!("not encodable: {e}")))
}

/// Decodes a postcard body, refusing trailing bytes and any spelling other
/// than the canonical one.
pub(crate) fn decode<T: Serialize + DeserializeOwned>(
    body: &[u8],
    kind: ObjectKind,
    object: &str,
) -> Result<T> {
    let corrupt = |offset: usize, reason: String| FormatError::Corrupt {
        kind,
        object: object.to_owned(),
        offset: (HEADER_BYTES + offset) as u64,
        reason,
    };
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| corrupt(0, format!("body: {e}")))?;
    if !rest.is_empty() {
        let at = body.len() - rest.len();
        return Err(corrupt(at, format!("{} trailing bytes", rest.len())));
    }
    let same = postcard::to_extend(&value, Compare::new(body))
        .map_err(|e| corrupt(0, format!("body does not re-encode: {e}")))?;
    if let Some(at) = same.first_difference() {
        return Err(corrupt(at, "not the canonical encoding".to_owned()));
    }
    Ok(value)
}

/// An `Extend<u8>` sink that compares what is written with expected bytes.
struct Compare<'a> {
    expected: &'a [u8],
    written: usize,
    differs_at: Option<usize>,
}

impl<'a> Compare<'a> {
    fn new(expected: &'a [u8]) -> Self {
        Compare {
            expected,
            written: 0,
            differs_at: None,
        }
    }

    fn first_difference(&self) -> Option<usize> {
        self.differs_at.or_else(|| {
            (self.written != self.expected.len()).then_some(self.written.min(self.expected.len()))
        })
    }
}

impl Extend<u8> for Compare<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        for b in bytes {
            if self.differs_at.is_none() && self.expected.get(self.written) != Some(&b) {
                self.differs_at = Some(self.written);
            }
            self.written += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Two {
        a: u64,
        b: String,
    }

    fn decode_two(body: &[u8]) -> Result<Two> {
        decode(body, ObjectKind::Head, "t")
    }

    #[test]
    fn canonical_bytes_round_trip() {
        let v = Two {
            a: 300,
            b: "x".into(),
        };
        let body = encode(&v, "two").unwrap();
        assert_eq!(body, [0xac, 0x02, 1, b'x']);
        assert_eq!(decode_two(&body).unwrap(), v);
    }

    #[test]
    fn trailing_bytes_and_overlong_varints_are_corrupt() {
        let err = decode_two(&[1, 1, b'x', 0]).unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains("trailing"),
            "{err}"
        );
        // 1 spelled in two bytes: postcard accepts it, the re-encoding differs.
        let err = decode_two(&[0x81, 0x00, 1, b'x']).unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains("canonical"),
            "{err}"
        );
        let err = decode_two(&[1, 5, b'x']).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }
}
