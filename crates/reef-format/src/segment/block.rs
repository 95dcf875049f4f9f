//! Data blocks: a run of entries sorted by (id ascending, version
//! descending), an offset array for binary search, an entry count and a CRC.
//!
//! ```text
//! entry*       id_len u16 | id | version u64 | tag u8 (0 put, 1 delete) | [doc_len u32 | doc]
//! offsets      u32 per entry, offset of the entry from the block start
//! count        u32
//! crc          u32, CRC-32/ISO-HDLC of everything before it
//! ```
//!
//! Invariant: `Block::decode` validates the CRC, every offset, and the
//! ordering of all ids before returning, so lookups on a decoded block
//! cannot fail or panic; entries it yields share the block's buffer.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::codec::{Reader, Writer, crc32};
use crate::entry::{Entry, EntryValue};
use crate::error::{FormatError, ObjectKind, Result};

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;
/// Smallest possible encoded entry: id_len, 1-byte id, version, tag.
const ENTRY_BYTES_MIN: usize = 2 + 1 + 8 + 1;

/// Accumulates one block.
#[derive(Default)]
pub(crate) struct BlockBuilder {
    w: Writer,
    offsets: Vec<u32>,
}

impl BlockBuilder {
    pub(crate) fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub(crate) fn entries(&self) -> usize {
        self.offsets.len()
    }

    /// Bytes the block will take once finished.
    pub(crate) fn estimated_bytes(&self) -> usize {
        self.w.len() + 4 * self.offsets.len() + 8
    }

    pub(crate) fn add(&mut self, e: &Entry) -> Result<()> {
        let offset = u32::try_from(self.w.len())
            .map_err(|_| FormatError::invalid("segment", "block exceeds 4 GiB"))?;
        self.offsets.push(offset);
        self.w.bytes16("entry.id", e.id.as_bytes())?;
        self.w.u64(e.version);
        match &e.value {
            EntryValue::Put(doc) => {
                self.w.u8(TAG_PUT);
                self.w.bytes32("entry.doc", doc)?;
            }
            EntryValue::Delete => self.w.u8(TAG_DELETE),
        }
        Ok(())
    }

    /// Finishes the block and resets the builder for the next one.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>> {
        let mut w = std::mem::take(&mut self.w);
        let offsets = std::mem::take(&mut self.offsets);
        for off in &offsets {
            w.u32(*off);
        }
        w.count("block entries", offsets.len())?;
        let crc = crc32(w.as_slice());
        w.u32(crc);
        Ok(w.into_vec())
    }
}

/// A decoded, validated data block.
#[derive(Clone, Debug)]
pub struct Block {
    entries: Vec<Entry>,
}

impl Block {
    /// Checks and decodes a block read from `object` at byte `offset`:
    /// CRC, layout, entry order. It cannot know where the block belongs;
    /// readers use `SegmentIndex::decode_block`, which also checks the block
    /// against its index entry.
    pub fn decode(bytes: &Bytes, object: &str, offset: u64) -> Result<Block> {
        let corrupt = |at: usize, reason: String| FormatError::Corrupt {
            kind: ObjectKind::Segment,
            object: object.to_owned(),
            offset: offset.saturating_add(at as u64),
            reason,
        };
        let len = bytes.len();
        if len < 8 {
            return Err(corrupt(0, format!("block of {len} bytes is truncated")));
        }
        let (covered, crc_bytes) = bytes.split_at(len - 4);
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
        let count_at = len - 8;
        let count = u32::from_le_bytes(
            covered
                .get(count_at..)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        ) as usize;
        let offsets_at = count
            .checked_mul(4)
            .and_then(|n| count_at.checked_sub(n))
            .ok_or_else(|| corrupt(count_at, format!("entry count {count} does not fit")))?;
        if count == 0 {
            return Err(corrupt(count_at, "empty block".to_owned()));
        }
        let data = covered.get(..offsets_at).unwrap_or_default();
        let mut r = Reader::new(data, ObjectKind::Segment, object, offset);
        let mut entries: Vec<Entry> = Vec::with_capacity(count.min(data.len() / ENTRY_BYTES_MIN));
        let mut offsets = Reader::new(
            covered.get(offsets_at..count_at).unwrap_or_default(),
            ObjectKind::Segment,
            object,
            offset.saturating_add(offsets_at as u64),
        );
        for _ in 0..count {
            let stored = offsets.u32("entry offset")? as usize;
            if stored != r.position() {
                return Err(r.corrupt(format!("entry offset {stored} does not match layout")));
            }
            let e = decode_entry(&mut r, bytes)?;
            if let Err(reason) = e.check_storable() {
                return Err(r.corrupt(reason));
            }
            if let Some(prev) = entries.last()
                && order(prev, &e) != Ordering::Less
            {
                return Err(r.corrupt(format!(
                    "entry ({:?}, v{}) out of order after ({:?}, v{})",
                    e.id, e.version, prev.id, prev.version
                )));
            }
            entries.push(e);
        }
        r.finish("block entries")?;
        Ok(Block { entries })
    }

    /// The entries, in (id ascending, version descending) order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Index of the first entry whose id is `>= id`.
    pub fn lower_bound(&self, id: &str) -> usize {
        self.entries.partition_point(|e| e.id.as_str() < id)
    }

    pub(crate) fn first(&self) -> Option<&Entry> {
        self.entries.first()
    }

    pub(crate) fn last(&self) -> Option<&Entry> {
        self.entries.last()
    }

    /// Consumes the block into its entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// Segment order: id ascending, then version descending (newest first).
pub(crate) fn order(a: &Entry, b: &Entry) -> Ordering {
    key_order(&a.id, a.version, &b.id, b.version)
}

/// Segment order of two (id, version) keys.
pub(crate) fn key_order(a_id: &str, a_version: u64, b_id: &str, b_version: u64) -> Ordering {
    a_id.as_bytes()
        .cmp(b_id.as_bytes())
        .then_with(|| b_version.cmp(&a_version))
}

fn decode_entry(r: &mut Reader<'_>, whole: &Bytes) -> Result<Entry> {
    let id = r.str16("entry id")?;
    let version = r.u64("entry version")?;
    let value = match r.u8("entry tag")? {
        TAG_PUT => {
            let doc = r.bytes32("entry doc")?;
            // `doc` is a sub-slice of `whole` (the reader walks a prefix of
            // it), so `slice_ref` cannot fail.
            EntryValue::Put(whole.slice_ref(doc))
        }
        TAG_DELETE => EntryValue::Delete,
        other => return Err(r.corrupt(format!("entry tag {other}"))),
    };
    Ok(Entry {
        id: id.to_owned(),
        version,
        value,
    })
}
