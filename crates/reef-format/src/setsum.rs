//! An order-independent digest of a multiset of entries (a "setsum", after
//! Chroma's wal3), used to prove that fold and compaction conserve content:
//! `written = live + dropped` as digests, not just as counts.
//!
//! Each entry is hashed to 256 bits (see `Entry::digest`), split into eight
//! little-endian u32 lanes; lane `i` is summed modulo the prime `PRIMES[i]`.
//! Adding is commutative and associative, and every element has an inverse,
//! so digests can be added and subtracted in any order.
//!
//! Invariant: every lane of a `Setsum` is `< PRIMES[lane]`; `from_bytes`
//! refuses bytes that break it.

use crate::error::{FormatError, ObjectKind, Result};
use serde::{Deserialize, Serialize};

/// The eight largest primes below 2^32, one modulus per lane.
pub const PRIMES: [u32; 8] = [
    4_294_967_291,
    4_294_967_279,
    4_294_967_231,
    4_294_967_197,
    4_294_967_189,
    4_294_967_161,
    4_294_967_143,
    4_294_967_111,
];

/// Encoded size of a setsum.
pub const SETSUM_BYTES: usize = 32;

/// An order-independent digest of a multiset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Setsum {
    lanes: [u32; 8],
}

fn add_mod(a: u32, b: u32, p: u32) -> u32 {
    // Both operands are < p < 2^32, so the sum fits in u64 and one
    // conditional subtraction reduces it.
    let s = u64::from(a) + u64::from(b);
    let p64 = u64::from(p);
    (if s >= p64 { s - p64 } else { s }) as u32
}

impl Setsum {
    /// The digest of the empty multiset.
    pub const EMPTY: Setsum = Setsum { lanes: [0; 8] };

    /// Adds one item, given by its 256-bit hash.
    pub fn insert_hash(&mut self, hash: &[u8; 32]) {
        *self = self.add(&Setsum::of_hash(hash));
    }

    /// Removes one item, given by its 256-bit hash.
    pub fn remove_hash(&mut self, hash: &[u8; 32]) {
        *self = self.sub(&Setsum::of_hash(hash));
    }

    /// The digest of a single item.
    pub fn of_hash(hash: &[u8; 32]) -> Setsum {
        let mut lanes = [0u32; 8];
        for ((lane, chunk), p) in lanes.iter_mut().zip(hash.chunks_exact(4)).zip(PRIMES) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            *lane = u32::from_le_bytes(b) % p;
        }
        Setsum { lanes }
    }

    /// The digest of the union of both multisets.
    #[must_use]
    pub fn add(&self, other: &Setsum) -> Setsum {
        let mut lanes = [0u32; 8];
        for (i, lane) in lanes.iter_mut().enumerate() {
            let (a, b, p) = (
                self.get(i),
                other.get(i),
                PRIMES.get(i).copied().unwrap_or(1),
            );
            *lane = add_mod(a, b, p);
        }
        Setsum { lanes }
    }

    /// The digest of `self` minus `other` (exact when `other` is a
    /// sub-multiset of `self`).
    #[must_use]
    pub fn sub(&self, other: &Setsum) -> Setsum {
        self.add(&other.negate())
    }

    /// The additive inverse.
    #[must_use]
    pub fn negate(&self) -> Setsum {
        let mut lanes = [0u32; 8];
        for (i, lane) in lanes.iter_mut().enumerate() {
            let (a, p) = (self.get(i), PRIMES.get(i).copied().unwrap_or(1));
            *lane = if a == 0 { 0 } else { p - a };
        }
        Setsum { lanes }
    }

    fn get(&self, i: usize) -> u32 {
        self.lanes.get(i).copied().unwrap_or(0)
    }

    /// Whether this is the digest of the empty multiset.
    pub fn is_empty(&self) -> bool {
        *self == Setsum::EMPTY
    }

    /// Little-endian lanes, 32 bytes.
    pub fn to_bytes(&self) -> [u8; SETSUM_BYTES] {
        let mut out = [0u8; SETSUM_BYTES];
        for (chunk, lane) in out.chunks_exact_mut(4).zip(self.lanes) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// Parses 32 bytes, refusing lanes that are not reduced.
    pub fn from_bytes(
        bytes: &[u8; SETSUM_BYTES],
        kind: ObjectKind,
        object: &str,
    ) -> Result<Setsum> {
        Setsum::parse(bytes).map_err(|reason| FormatError::Corrupt {
            kind,
            object: object.to_owned(),
            offset: 0,
            reason,
        })
    }

    fn parse(bytes: &[u8; SETSUM_BYTES]) -> Result<Setsum, String> {
        let mut lanes = [0u32; 8];
        for (i, ((lane, chunk), p)) in lanes
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .zip(PRIMES)
            .enumerate()
        {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            let v = u32::from_le_bytes(b);
            if v >= p {
                return Err(format!("setsum lane {i} = {v} is not reduced modulo {p}"));
            }
            *lane = v;
        }
        Ok(Setsum { lanes })
    }

    /// Lowercase hex of `to_bytes`, for reports.
    pub fn to_hex(&self) -> String {
        self.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// In binary formats (the manifest body) a setsum is its 32 bytes; in
/// human-readable ones (JSON reports) its lowercase hex.
impl Serialize for Setsum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.to_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Setsum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Setsum, D::Error> {
        use serde::de::Error;
        let bytes = if d.is_human_readable() {
            let hex = String::deserialize(d)?;
            hex_bytes(&hex).ok_or_else(|| D::Error::custom("setsum: expected 64 hex digits"))?
        } else {
            <[u8; SETSUM_BYTES]>::deserialize(d)?
        };
        Setsum::parse(&bytes).map_err(D::Error::custom)
    }
}

fn hex_bytes(hex: &str) -> Option<[u8; SETSUM_BYTES]> {
    let mut out = [0u8; SETSUM_BYTES];
    if hex.len() != 2 * SETSUM_BYTES {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seed: u8) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seed
                .wrapping_mul(31)
                .wrapping_add(i as u8)
                .wrapping_mul(197);
        }
        out
    }

    #[test]
    fn order_independent_and_invertible() {
        let (a, b, c) = (h(1), h(2), h(3));
        let mut x = Setsum::EMPTY;
        x.insert_hash(&a);
        x.insert_hash(&b);
        x.insert_hash(&c);
        let mut y = Setsum::EMPTY;
        y.insert_hash(&c);
        y.insert_hash(&a);
        y.insert_hash(&b);
        assert_eq!(x, y);
        y.remove_hash(&b);
        assert_ne!(x, y);
        assert_eq!(x.sub(&y), Setsum::of_hash(&b));
        assert!(x.sub(&x).is_empty());
    }

    #[test]
    fn lanes_at_max_wrap_correctly() {
        let all_ones = [0xffu8; 32];
        let s = Setsum::of_hash(&all_ones);
        let doubled = s.add(&s);
        assert_eq!(doubled.sub(&s), s);
        let round = Setsum::from_bytes(&doubled.to_bytes(), ObjectKind::Wal, "w").unwrap();
        assert_eq!(round, doubled);
    }

    #[test]
    fn unreduced_lane_is_corrupt() {
        let bytes = [0xffu8; 32];
        assert!(
            Setsum::from_bytes(&bytes, ObjectKind::Wal, "w")
                .unwrap_err()
                .is_corruption()
        );
    }

    #[test]
    fn serde_is_hex_for_people_and_bytes_for_postcard() {
        let s = Setsum::of_hash(&h(7));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.to_hex()));
        assert_eq!(serde_json::from_str::<Setsum>(&json).unwrap(), s);
        let bin = postcard::to_allocvec(&s).unwrap();
        assert_eq!(bin, s.to_bytes());
        assert_eq!(postcard::from_bytes::<Setsum>(&bin).unwrap(), s);
        assert!(postcard::from_bytes::<Setsum>(&[0xff; 32]).is_err());
        assert!(serde_json::from_str::<Setsum>("\"00\"").is_err());
    }
}
