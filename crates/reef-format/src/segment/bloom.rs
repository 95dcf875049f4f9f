//! The segment's bloom filter over document ids, for point lookups that can
//! skip a segment without fetching any of its blocks.
//!
//! ```text
//! hash_count  u32          probes per key (1..=30)
//! bit_bytes   u32          length of the bit array in bytes (>= 8)
//! bits        bit_bytes    bit i is bit (i % 8) of byte i / 8
//! crc         u32          CRC-32/ISO-HDLC of everything before it
//! ```
//! Probe sequence (LevelDB's double hashing over XXH3-64): `h = xxh3_64(id)`,
//! `delta = h.rotate_right(33)`; probe `j` tests bit `h_j % (8 * bit_bytes)`
//! where `h_0 = h` and `h_{j+1} = h_j + delta` (wrapping).

use xxhash_rust::xxh3::xxh3_64;

use crate::codec::{Reader, Writer, crc32};
use crate::error::{FormatError, ObjectKind, Result};

const HASH_COUNT_MAX: u32 = 30;
/// Largest bit array accepted: 512 MiB covers ~400M keys at 10 bits/key.
const BIT_BYTES_MAX: usize = 512 << 20;

/// A decoded bloom filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bloom {
    hash_count: u32,
    bits: Vec<u8>,
}

/// The hash a bloom filter is built from; builders collect these.
pub(crate) fn key_hash(id: &str) -> u64 {
    xxh3_64(id.as_bytes())
}

impl Bloom {
    /// Builds a filter over `hashes` with `bits_per_key` bits per key.
    pub(crate) fn build(hashes: &[u64], bits_per_key: u32) -> Bloom {
        let bits_per_key = bits_per_key.clamp(1, 64);
        // k = bits_per_key * ln 2 minimises the false-positive rate.
        let hash_count = ((bits_per_key as f64) * std::f64::consts::LN_2).round() as u32;
        let hash_count = hash_count.clamp(1, HASH_COUNT_MAX);
        let bits = (hashes.len() as u64 * u64::from(bits_per_key)).max(64);
        let bit_bytes = bits.div_ceil(8) as usize;
        let mut bloom = Bloom {
            hash_count,
            bits: vec![0; bit_bytes],
        };
        for &h in hashes {
            bloom.probe(h, |bits, byte, mask| {
                if let Some(b) = bits.get_mut(byte) {
                    *b |= mask;
                }
                true
            });
        }
        bloom
    }

    /// Visits every probe position; stops early when `f` returns false.
    fn probe(&mut self, mut h: u64, mut f: impl FnMut(&mut [u8], usize, u8) -> bool) -> bool {
        let nbits = self.bits.len() as u64 * 8;
        let delta = h.rotate_right(33);
        for _ in 0..self.hash_count {
            let bit = h % nbits;
            if !f(&mut self.bits, (bit / 8) as usize, 1u8 << (bit % 8)) {
                return false;
            }
            h = h.wrapping_add(delta);
        }
        true
    }

    /// False means the id is certainly absent; true means it may be present.
    pub fn may_contain(&self, id: &str) -> bool {
        let mut h = key_hash(id);
        let nbits = self.bits.len() as u64 * 8;
        let delta = h.rotate_right(33);
        for _ in 0..self.hash_count {
            let bit = h % nbits;
            let set = self
                .bits
                .get((bit / 8) as usize)
                .is_some_and(|b| b & (1u8 << (bit % 8)) != 0);
            if !set {
                return false;
            }
            h = h.wrapping_add(delta);
        }
        true
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.bits.len() + 12);
        w.u32(self.hash_count);
        // Builders cap the array far below 4 GiB (BIT_BYTES_MAX).
        w.u32(self.bits.len() as u32);
        w.bytes(&self.bits);
        let crc = crc32(w.as_slice());
        w.u32(crc);
        w.into_vec()
    }

    /// Checks and decodes a bloom block read from `object` at `offset`.
    pub fn decode(bytes: &[u8], object: &str, offset: u64) -> Result<Bloom> {
        let (covered, crc) = split_crc(bytes, object, offset, "bloom block")?;
        let mut r = Reader::new(covered, ObjectKind::Segment, object, offset);
        let hash_count = r.u32("bloom hash_count")?;
        if !(1..=HASH_COUNT_MAX).contains(&hash_count) {
            return Err(r.corrupt(format!("bloom hash count {hash_count}")));
        }
        let bit_bytes = r.u32("bloom bit_bytes")? as usize;
        if !(8..=BIT_BYTES_MAX).contains(&bit_bytes) {
            return Err(r.corrupt(format!("bloom of {bit_bytes} bytes")));
        }
        let bits = r.take(bit_bytes, "bloom bits")?.to_vec();
        r.finish("bloom block")?;
        let _ = crc;
        Ok(Bloom { hash_count, bits })
    }

    /// Size of the bit array in bytes.
    pub fn bit_bytes(&self) -> usize {
        self.bits.len()
    }
}

/// Splits off and checks a trailing CRC-32 over the rest of `bytes`.
pub(crate) fn split_crc<'a>(
    bytes: &'a [u8],
    object: &str,
    offset: u64,
    what: &str,
) -> Result<(&'a [u8], u32)> {
    let Some(covered_len) = bytes.len().checked_sub(4) else {
        return Err(FormatError::Corrupt {
            kind: ObjectKind::Segment,
            object: object.to_owned(),
            offset,
            reason: format!("{what} of {} bytes is truncated", bytes.len()),
        });
    };
    let (covered, crc_bytes) = bytes.split_at(covered_len);
    let expected = u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default());
    let actual = crc32(covered);
    if expected != actual {
        return Err(FormatError::ChecksumMismatch {
            kind: ObjectKind::Segment,
            object: object.to_owned(),
            offset,
            expected,
            actual,
        });
    }
    Ok((covered, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_low_false_positive_rate() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("id-{i}")).collect();
        let hashes: Vec<u64> = ids.iter().map(|id| key_hash(id)).collect();
        let bloom = Bloom::build(&hashes, 10);
        let decoded = Bloom::decode(&bloom.encode(), "s", 0).unwrap();
        assert_eq!(decoded, bloom);
        assert!(ids.iter().all(|id| decoded.may_contain(id)));
        let fp = (0..10_000)
            .filter(|i| decoded.may_contain(&format!("other-{i}")))
            .count();
        // 10 bits/key gives ~0.8% in theory; 2% leaves room for variance.
        assert!(fp < 200, "{fp} false positives in 10000");
    }
}
