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
//! cannot fail or panic; entries it yields share the block's buffer. A
//! decoded block keeps its bytes and a fixed-size slot per entry, and
//! makes an owned `Entry` only when asked for one.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::codec::{Reader, Writer, crc32};
use crate::entry::{Entry, EntryValue, check_storable};
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

/// A decoded, validated data block: its bytes and one `Slot` per entry.
///
/// Decoding allocates once per block (the slots), not once per entry: an
/// entry becomes an owned `Entry` only when a reader asks for it, and a
/// cached block costs its bytes plus `SLOT_BYTES` per entry (with an owned
/// `Entry` per entry it cost about 1.9 times its bytes for 100-byte
/// documents, and its id allocations were a tenth of a cold scan's CPU).
#[derive(Clone, Debug)]
pub struct Block {
    bytes: Bytes,
    slots: Vec<Slot>,
}

/// Where one entry lies in its block, as validated by `Block::decode`.
#[derive(Clone, Copy, Debug)]
struct Slot {
    version: u64,
    id_at: u32,
    doc_at: u32,
    doc_len: u32,
    id_len: u16,
    put: bool,
}

/// What a decoded block holds per entry beyond its bytes.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

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
        // Slots hold 32-bit offsets; a block's length is a u32 in its index.
        if u32::try_from(len).is_err() {
            return Err(corrupt(0, format!("block of {len} bytes exceeds 4 GiB")));
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
        let mut slots: Vec<Slot> = Vec::with_capacity(count.min(data.len() / ENTRY_BYTES_MIN));
        let mut offsets = Reader::new(
            covered.get(offsets_at..count_at).unwrap_or_default(),
            ObjectKind::Segment,
            object,
            offset.saturating_add(offsets_at as u64),
        );
        let mut prev: Option<(&str, u64)> = None;
        for _ in 0..count {
            let stored = offsets.u32("entry offset")? as usize;
            if stored != r.position() {
                return Err(r.corrupt(format!("entry offset {stored} does not match layout")));
            }
            let (id, slot) = decode_slot(&mut r)?;
            let doc = slot.put.then(|| slice(data, slot.doc_at, slot.doc_len));
            if let Err(reason) = check_storable(id, doc) {
                return Err(r.corrupt(reason));
            }
            if let Some((prev_id, prev_version)) = prev
                && key_order(prev_id, prev_version, id, slot.version) != Ordering::Less
            {
                return Err(r.corrupt(format!(
                    "entry ({id:?}, v{}) out of order after ({prev_id:?}, v{prev_version})",
                    slot.version
                )));
            }
            prev = Some((id, slot.version));
            slots.push(slot);
        }
        r.finish("block entries")?;
        Ok(Block {
            bytes: bytes.clone(),
            slots,
        })
    }

    /// Entries in the block.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the block has no entry (a decoded block always has one).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id of entry `i` (`""` past the end).
    pub fn id(&self, i: usize) -> &str {
        self.slots.get(i).map_or("", |s| self.id_of(s))
    }

    /// The version of entry `i` (0 past the end).
    pub fn version(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.version)
    }

    /// Whether entry `i` holds a document (false for a tombstone, and past
    /// the end).
    pub fn is_put(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.put)
    }

    /// Bytes of entry `i`'s id and document (`Entry::payload_bytes`
    /// without making the entry; 0 past the end).
    pub fn payload_bytes(&self, i: usize) -> usize {
        self.slots.get(i).map_or(0, |s| {
            usize::from(s.id_len) + if s.put { s.doc_len as usize } else { 0 }
        })
    }

    /// Entry `i` as an owned entry; its document shares the block's bytes.
    pub fn entry(&self, i: usize) -> Option<Entry> {
        self.slots.get(i).map(|s| self.entry_of(s))
    }

    /// The entries, in (id ascending, version descending) order, each made
    /// owned as it is yielded.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = Entry> + '_ {
        self.slots.iter().map(|s| self.entry_of(s))
    }

    /// Index of the first entry whose id is `>= id`.
    pub fn lower_bound(&self, id: &str) -> usize {
        self.partition_point(|e| e < id)
    }

    /// The number of leading entries whose id satisfies `before` (which
    /// must hold for a prefix of the ids and for none after it).
    pub fn partition_point(&self, mut before: impl FnMut(&str) -> bool) -> usize {
        self.slots.partition_point(|s| before(self.id_of(s)))
    }

    /// Id and version of the first entry.
    pub(crate) fn first(&self) -> Option<(&str, u64)> {
        self.slots.first().map(|s| (self.id_of(s), s.version))
    }

    /// Id and version of the last entry.
    pub(crate) fn last(&self) -> Option<(&str, u64)> {
        self.slots.last().map(|s| (self.id_of(s), s.version))
    }

    /// Consumes the block into its entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries().collect()
    }

    /// What the block holds in memory: its bytes and its slots. A block
    /// cache charges this, so its budget bounds what it really holds.
    pub fn mem_bytes(&self) -> usize {
        self.bytes.len() + self.slots.len() * SLOT_BYTES
    }

    /// The same block on a copy of its bytes: one read with others in a
    /// run of read-ahead shares the run's buffer, which a cached block
    /// must not keep alive.
    pub fn unshared(self) -> Block {
        Block {
            bytes: Bytes::copy_from_slice(&self.bytes),
            slots: self.slots,
        }
    }

    /// The block's bytes as read (a slice of the buffer they were read
    /// into, unless `unshared`).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    fn entry_of(&self, s: &Slot) -> Entry {
        let value = if s.put {
            let at = s.doc_at as usize;
            EntryValue::Put(self.bytes.slice(at..at + s.doc_len as usize))
        } else {
            EntryValue::Delete
        };
        Entry {
            id: self.id_of(s).to_owned(),
            version: s.version,
            value,
        }
    }

    fn id_of(&self, s: &Slot) -> &str {
        // Checked as UTF-8 by `decode`, and the bytes never change: the
        // fallback is unreachable, and keeps a bug from becoming a panic.
        std::str::from_utf8(slice(&self.bytes, s.id_at, u32::from(s.id_len))).unwrap_or_default()
    }
}

/// `len` bytes of `bytes` at `at` (empty if out of range, which a slot
/// made by `decode` never is).
fn slice(bytes: &[u8], at: u32, len: u32) -> &[u8] {
    let at = at as usize;
    bytes.get(at..at + len as usize).unwrap_or_default()
}

/// Segment order of two (id, version) keys.
pub(crate) fn key_order(a_id: &str, a_version: u64, b_id: &str, b_version: u64) -> Ordering {
    a_id.as_bytes()
        .cmp(b_id.as_bytes())
        .then_with(|| b_version.cmp(&a_version))
}

/// One entry's slot, and its id; `r` is on the block's entries, which
/// begin at the block's first byte, so its positions are block offsets.
fn decode_slot<'a>(r: &mut Reader<'a>) -> Result<(&'a str, Slot)> {
    let id_at = r.position() + 2;
    let id = r.str16("entry id")?;
    let version = r.u64("entry version")?;
    let (put, doc_at, doc_len) = match r.u8("entry tag")? {
        TAG_PUT => {
            let doc_at = r.position() + 4;
            let doc = r.bytes32("entry doc")?;
            (true, doc_at, doc.len())
        }
        TAG_DELETE => (false, 0, 0),
        other => return Err(r.corrupt(format!("entry tag {other}"))),
    };
    // The block is under 4 GiB (checked by `decode`) and an id's length is
    // a u16, so these fit.
    let slot = Slot {
        version,
        id_at: id_at as u32,
        doc_at: doc_at as u32,
        doc_len: doc_len as u32,
        id_len: id.len() as u16,
        put,
    };
    Ok((id, slot))
}
