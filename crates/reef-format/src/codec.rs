//! Byte-level primitives shared by every codec: a growable little-endian
//! writer and a bounds-checked reader.
//!
//! Invariant: `Reader` never panics and never reads past its slice; every
//! failure is a `FormatError::Corrupt` carrying the object's kind, name and
//! the absolute offset of the failed read. All integers are fixed-size
//! little-endian (docs/format.md).

use crate::error::{FormatError, ObjectKind, Result};

/// Appends little-endian fields to a byte buffer.
#[derive(Default, Debug)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// A length-prefixed byte string with a `u16` length. Callers validate
    /// lengths against limits before encoding; the conversion still refuses
    /// rather than truncating.
    pub(crate) fn bytes16(&mut self, field: &str, v: &[u8]) -> Result<()> {
        let len = u16::try_from(v.len())
            .map_err(|_| FormatError::invalid(field, format!("{} bytes exceed 65535", v.len())))?;
        self.u16(len);
        self.bytes(v);
        Ok(())
    }

    /// A length-prefixed byte string with a `u32` length.
    pub(crate) fn bytes32(&mut self, field: &str, v: &[u8]) -> Result<()> {
        let len = u32::try_from(v.len())
            .map_err(|_| FormatError::invalid(field, format!("{} bytes exceed u32", v.len())))?;
        self.u32(len);
        self.bytes(v);
        Ok(())
    }

    /// A collection count as `u32`.
    pub(crate) fn count(&mut self, field: &str, n: usize) -> Result<()> {
        let n = u32::try_from(n)
            .map_err(|_| FormatError::invalid(field, format!("{n} items exceed u32")))?;
        self.u32(n);
        Ok(())
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads little-endian fields from a slice, failing with `Corrupt` instead
/// of panicking when the bytes run out or a value is out of range.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: ObjectKind,
    object: &'a str,
    /// Absolute offset of `buf[0]` within the object, for error messages.
    base: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], kind: ObjectKind, object: &'a str, base: u64) -> Self {
        Reader {
            buf,
            pos: 0,
            kind,
            object,
            base,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// A `Corrupt` error at the current position.
    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> FormatError {
        FormatError::Corrupt {
            kind: self.kind,
            object: self.object.to_owned(),
            offset: self.base.saturating_add(self.pos as u64),
            reason: reason.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "{what}: needs {n} bytes, {} left",
                    self.remaining()
                ))
            })?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.corrupt(what.to_owned()))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u128(&mut self, what: &str) -> Result<u128> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.array(what)
    }

    pub(crate) fn bytes16(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    pub(crate) fn bytes32(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| self.corrupt(format!("{what}: length")))?;
        self.take(len, what)
    }

    /// A UTF-8 string with a `u16` length prefix.
    pub(crate) fn str16(&mut self, what: &str) -> Result<&'a str> {
        let start = self.pos;
        let bytes = self.bytes16(what)?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.pos = start;
            self.corrupt(format!("{what}: not UTF-8"))
        })
    }

    /// A UTF-8 string with a `u32` length prefix.
    pub(crate) fn str32(&mut self, what: &str) -> Result<&'a str> {
        let start = self.pos;
        let bytes = self.bytes32(what)?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.pos = start;
            self.corrupt(format!("{what}: not UTF-8"))
        })
    }

    /// A `u32` item count, checked against a limit and against the bytes
    /// left (each item needs at least `min_item_bytes`), so a corrupt count
    /// can never make a decoder pre-allocate unbounded memory.
    pub(crate) fn count(&mut self, what: &str, max: usize, min_item_bytes: usize) -> Result<usize> {
        let n = self.u32(what)?;
        let n = usize::try_from(n).map_err(|_| self.corrupt(format!("{what}: count")))?;
        if n > max {
            return Err(self.corrupt(format!("{what}: count {n} exceeds limit {max}")));
        }
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(self.corrupt(format!(
                "{what}: count {n} cannot fit in {} remaining bytes",
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// Fails unless every byte was consumed: trailing garbage is corruption.
    pub(crate) fn finish(&self, what: &str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{what}: {} trailing bytes", self.remaining())))
        }
    }
}

/// CRC-32/ISO-HDLC (the zlib/PNG CRC) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_absolute_offset_on_underflow() {
        let mut r = Reader::new(&[1, 2, 3], ObjectKind::Wal, "wal/1", 100);
        assert_eq!(r.u16("a").unwrap(), 0x0201);
        let err = r.u32("b").unwrap_err();
        match err {
            FormatError::Corrupt {
                offset, ref reason, ..
            } => {
                assert_eq!(offset, 102);
                assert!(reason.contains("needs 4 bytes, 1 left"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn count_refuses_more_items_than_bytes() {
        let mut w = Writer::default();
        w.u32(1_000);
        w.bytes(&[0; 10]);
        let mut r = Reader::new(w.as_slice(), ObjectKind::Manifest, "m", 0);
        assert!(r.count("segments", 1_000_000, 8).is_err());
    }

    #[test]
    fn crc_is_iso_hdlc() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
