//! `Entry`: one version of one document id, as stored in WAL records and
//! segments and consumed by the merge iterator.
//!
//! Invariant: an entry's digest (its contribution to a setsum) depends only
//! on `(id, version, value)`, so the same entry hashes the same in a WAL
//! record, a level-0 segment and a level-1 segment; that is what lets the
//! manifest prove `written = live + dropped`.

use bytes::Bytes;
use xxhash_rust::xxh3::{Xxh3, xxh3_128_with_seed};

use crate::limits::{DOC_BYTES_HARD_MAX, ID_BYTES_HARD_MAX};
use crate::setsum::Setsum;
use crate::value::is_document_encoding;

/// The value side of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryValue {
    /// The whole document at this version, in its canonical encoding
    /// (`value::encode_document`).
    Put(Bytes),
    /// The id was deleted at this version.
    Delete,
}

impl EntryValue {
    /// Encoded document bytes (0 for a tombstone): the value's share of
    /// `Entry::payload_bytes`, for holders that keep the id apart.
    pub fn doc_bytes(&self) -> usize {
        match self {
            EntryValue::Put(doc) => doc.len(),
            EntryValue::Delete => 0,
        }
    }
}

/// One version of one document id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Document id (valid UTF-8, ordered bytewise).
    pub id: String,
    /// Namespace-wide version assigned when the change was acknowledged.
    pub version: u64,
    /// The document or a tombstone.
    pub value: EntryValue,
}

/// Seed of the second 128-bit half of an entry digest.
const DIGEST_SEED_HI: u64 = 0x5265_6566_5365_7453; // "ReefSetS"

impl Entry {
    /// A put entry.
    pub fn put(id: impl Into<String>, version: u64, doc: impl Into<Bytes>) -> Entry {
        Entry {
            id: id.into(),
            version,
            value: EntryValue::Put(doc.into()),
        }
    }

    /// A tombstone.
    pub fn delete(id: impl Into<String>, version: u64) -> Entry {
        Entry {
            id: id.into(),
            version,
            value: EntryValue::Delete,
        }
    }

    /// Whether this entry is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self.value, EntryValue::Delete)
    }

    /// Encoded document bytes, if a put.
    pub fn doc(&self) -> Option<&Bytes> {
        match &self.value {
            EntryValue::Put(doc) => Some(doc),
            EntryValue::Delete => None,
        }
    }

    /// Bytes of id plus document: what this entry costs in memory budgets
    /// and segment size estimates.
    pub fn payload_bytes(&self) -> usize {
        self.id.len() + self.value.doc_bytes()
    }

    /// The 256-bit digest of this entry (docs/format.md, "Entry digest"):
    /// `lo = XXH3-128(seed 0)` over `id_len u16 | id | version u64 | tag u8 |
    /// doc_len u32 | doc`, then `hi = XXH3-128(seed "ReefSetS")` over the 16
    /// bytes of `lo`; the digest is `lo ‖ hi`, each half little-endian.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Xxh3::new();
        // Ids are at most 64 KiB by construction (ID_BYTES_HARD_MAX); the
        // cast cannot truncate a valid id.
        h.update(&(self.id.len() as u16).to_le_bytes());
        h.update(self.id.as_bytes());
        h.update(&self.version.to_le_bytes());
        match &self.value {
            EntryValue::Put(doc) => {
                h.update(&[0]);
                h.update(&(doc.len() as u32).to_le_bytes());
                h.update(doc);
            }
            EntryValue::Delete => {
                h.update(&[1]);
                h.update(&0u32.to_le_bytes());
            }
        }
        let lo = h.digest128().to_le_bytes();
        let hi = xxh3_128_with_seed(&lo, DIGEST_SEED_HI).to_le_bytes();
        let mut out = [0u8; 32];
        let (a, b) = out.split_at_mut(16);
        a.copy_from_slice(&lo);
        b.copy_from_slice(&hi);
        out
    }

    /// What every stored entry must satisfy to be decodable again (shared
    /// by WAL records and segments, on both the encode and decode side):
    /// an id of 1..=`ID_BYTES_HARD_MAX` bytes and, for a put, a document of
    /// at most `DOC_BYTES_HARD_MAX` bytes that starts as an object.
    pub fn check_storable(&self) -> Result<(), String> {
        let doc = match &self.value {
            EntryValue::Put(doc) => Some(&doc[..]),
            EntryValue::Delete => None,
        };
        check_storable(&self.id, doc)
    }

    /// This entry as a one-element setsum.
    pub fn setsum(&self) -> Setsum {
        Setsum::of_hash(&self.digest())
    }
}

/// `Entry::check_storable` on an entry's parts (`doc` is `None` for a
/// tombstone), for a decoder that has not made the entry.
pub(crate) fn check_storable(id: &str, doc: Option<&[u8]>) -> Result<(), String> {
    if id.is_empty() || id.len() > ID_BYTES_HARD_MAX {
        return Err(format!(
            "id of {} bytes, must be 1..={ID_BYTES_HARD_MAX}",
            id.len()
        ));
    }
    if let Some(doc) = doc {
        if doc.len() > DOC_BYTES_HARD_MAX {
            return Err(format!(
                "document of {} bytes exceeds {DOC_BYTES_HARD_MAX}",
                doc.len()
            ));
        }
        if !is_document_encoding(doc) {
            return Err("document bytes do not start with an object".to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_every_field() {
        let base = Entry::put("a", 1, Bytes::from_static(b"x"));
        let variants = [
            Entry::put("b", 1, Bytes::from_static(b"x")),
            Entry::put("a", 2, Bytes::from_static(b"x")),
            Entry::put("a", 1, Bytes::from_static(b"y")),
            Entry::delete("a", 1),
        ];
        for v in variants {
            assert_ne!(base.digest(), v.digest(), "{v:?}");
        }
        assert_eq!(base.digest(), base.clone().digest());
    }
}
