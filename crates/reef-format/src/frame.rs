//! The common frame around every whole-object codec (WAL record, manifest,
//! HEAD, lease, checkpoint). Segments use a footer instead, so that a reader
//! can fetch pieces of them by range (see `segment`).
//!
//! ```text
//! offset  size  field
//! 0       4     magic (per object kind)
//! 4       2     format version (u16 LE, >= 1)
//! 6       2     flags (u16 LE, 0 in version 1)
//! 8       8     body length N (u64 LE)
//! 16      N     body
//! 16+N    4     CRC-32/ISO-HDLC of bytes [0, 16+N)
//! ```
//!
//! Invariant: `open` checks, in order, size, magic, length, CRC, and only
//! then the version, so a flipped bit anywhere is reported as corruption,
//! and a genuinely newer object (valid CRC) as `UnsupportedVersion`.

use crate::codec::crc32;
use crate::error::{FormatError, ObjectKind, Result};

/// Bytes before the body.
pub const HEADER_BYTES: usize = 16;
/// Bytes after the body.
pub const TRAILER_BYTES: usize = 4;

/// Static description of one framed object kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameSpec {
    pub(crate) kind: ObjectKind,
    pub(crate) magic: [u8; 4],
    /// The version this build writes, and the newest it reads.
    pub(crate) version: u16,
    /// Largest body accepted, so a corrupt length cannot ask for gigabytes.
    pub(crate) body_bytes_max: u64,
}

impl FrameSpec {
    /// Wraps `body` in a frame.
    pub(crate) fn seal(&self, body: &[u8]) -> Result<Vec<u8>> {
        let body_len = body.len() as u64;
        if body_len > self.body_bytes_max {
            return Err(FormatError::invalid(
                self.kind.to_string(),
                format!(
                    "encoded body of {body_len} bytes exceeds limit {}",
                    self.body_bytes_max
                ),
            ));
        }
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len() + TRAILER_BYTES);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(body);
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Checks the frame and returns the object's format version (1 up to
    /// `self.version`, so decoders can still read older versions) and body.
    pub(crate) fn open_versioned<'a>(
        &self,
        bytes: &'a [u8],
        object: &str,
    ) -> Result<(u16, &'a [u8])> {
        let corrupt = |offset: u64, reason: String| FormatError::Corrupt {
            kind: self.kind,
            object: object.to_owned(),
            offset,
            reason,
        };
        let min = HEADER_BYTES + TRAILER_BYTES;
        let (Some(header), Some(_)) = (bytes.get(..HEADER_BYTES), bytes.get(..min)) else {
            return Err(corrupt(
                0,
                format!(
                    "truncated: {} bytes, a frame needs at least {min}",
                    bytes.len()
                ),
            ));
        };
        let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
        if field(0..4) != self.magic {
            return Err(FormatError::BadMagic {
                kind: self.kind,
                object: object.to_owned(),
                expected: self.magic,
                found: field(0..4).to_vec(),
            });
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(field(8..16));
        let body_len = u64::from_le_bytes(len_bytes);
        if body_len > self.body_bytes_max {
            return Err(corrupt(
                8,
                format!(
                    "body length {body_len} exceeds limit {}",
                    self.body_bytes_max
                ),
            ));
        }
        // body_len <= body_bytes_max, which is far below usize::MAX.
        let body_end = HEADER_BYTES + body_len as usize;
        if bytes.len() != body_end + TRAILER_BYTES {
            return Err(corrupt(
                8,
                format!(
                    "length mismatch: header says {} bytes in all, object has {} (truncated or extended)",
                    body_end + TRAILER_BYTES,
                    bytes.len()
                ),
            ));
        }
        let (covered, trailer) = bytes.split_at(body_end);
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(trailer);
        let expected = u32::from_le_bytes(crc_bytes);
        let actual = crc32(covered);
        if expected != actual {
            return Err(FormatError::ChecksumMismatch {
                kind: self.kind,
                object: object.to_owned(),
                offset: 0,
                expected,
                actual,
            });
        }
        let mut version_bytes = [0u8; 2];
        version_bytes.copy_from_slice(field(4..6));
        let version = u16::from_le_bytes(version_bytes);
        if version == 0 {
            return Err(corrupt(4, "format version 0 is invalid".to_owned()));
        }
        if version > self.version {
            return Err(FormatError::UnsupportedVersion {
                kind: self.kind,
                object: object.to_owned(),
                found: version,
                supported: self.version,
            });
        }
        if field(6..8) != [0, 0] {
            return Err(corrupt(6, "unknown flags set".to_owned()));
        }
        Ok((version, covered.get(HEADER_BYTES..).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: FrameSpec = FrameSpec {
        kind: ObjectKind::Head,
        magic: *b"TEST",
        version: 1,
        body_bytes_max: 64,
    };

    #[test]
    fn seal_open_round_trip() {
        let framed = SPEC.seal(b"hello").unwrap();
        assert_eq!(framed.len(), HEADER_BYTES + 5 + TRAILER_BYTES);
        assert_eq!(
            SPEC.open_versioned(&framed, "x").unwrap(),
            (1, &b"hello"[..])
        );
    }

    #[test]
    fn newer_version_with_valid_crc_is_unsupported_not_corrupt() {
        let newer = FrameSpec { version: 2, ..SPEC };
        let framed = newer.seal(b"future").unwrap();
        let err = SPEC.open_versioned(&framed, "HEAD").unwrap_err();
        assert!(matches!(
            err,
            FormatError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
        assert!(!err.is_corruption());
        assert!(err.to_string().contains("HEAD"), "{err}");
    }

    #[test]
    fn oversized_body_is_refused_on_both_sides() {
        assert!(SPEC.seal(&[0; 65]).is_err());
        let big = FrameSpec {
            body_bytes_max: 1000,
            ..SPEC
        };
        let framed = big.seal(&[0; 65]).unwrap();
        assert!(
            SPEC.open_versioned(&framed, "x")
                .unwrap_err()
                .is_corruption()
        );
    }
}
