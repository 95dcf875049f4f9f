//! The block index and the footer of a segment.
//!
//! Index block:
//! ```text
//! count        u32
//! per block:   offset u64 | len u32 | entries u32 | last_version u64 | last_id_len u16 | last_id
//! crc          u32
//! ```
//! Footer, followed by the fixed 12-byte tail that ends every segment:
//! ```text
//! version u16 | flags u16 | entry_count u64 | tombstone_count u64 | block_count u32
//! index_offset u64 | index_len u32 | bloom_offset u64 | bloom_len u32
//! min_version u64 | max_version u64 | setsum [32] | min_id (u16 len) | max_id (u16 len)
//! tail: footer_len u32 | crc u32 (of footer ‖ footer_len) | magic "RFSG"
//! ```
//!
//! Invariant: a decoded footer's regions lie inside the object in the order
//! data < index < bloom < footer; a decoded index covers the data region
//! exactly, with strictly increasing last keys and entry counts that sum to
//! the footer's.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::codec::{Reader, Writer, crc32};
use crate::error::{FormatError, ObjectKind, Result};
use crate::segment::block::Block;
use crate::segment::bloom::split_crc;
use crate::setsum::{SETSUM_BYTES, Setsum};

/// Current segment format version.
/// (Version 2: documents may hold -0.0, which version 1 canonicalised to
/// 0.0 and refused; the layout is unchanged, version 1 is still read.)
pub const SEGMENT_FORMAT_VERSION: u16 = 2;
/// Magic at the very end of every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"RFSG";
/// Size of the fixed tail.
pub const TAIL_BYTES: usize = 12;
/// How many trailing bytes a ranged reader should fetch first: enough for
/// the tail and a footer with two 1 KiB ids.
pub const FOOTER_FETCH_BYTES: usize = 4096;
/// Most blocks one segment may have.
const BLOCKS_MAX: usize = 1 << 24;

/// Where one block lives and what it ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHandle {
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// Length of the block in bytes.
    pub len: u32,
    /// Number of entries in the block.
    pub entries: u32,
    /// Id of the block's last entry.
    pub last_id: String,
    /// Version of the block's last entry.
    pub last_version: u64,
}

/// Summary of a segment, stored in its footer and copied into manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFooter {
    /// Format version of the segment.
    pub version: u16,
    /// Entries (all versions, tombstones included).
    pub entry_count: u64,
    /// Tombstones among them.
    pub tombstone_count: u64,
    /// Data blocks.
    pub block_count: u32,
    /// Offset of the index block.
    pub index_offset: u64,
    /// Length of the index block.
    pub index_len: u32,
    /// Offset of the bloom block.
    pub bloom_offset: u64,
    /// Length of the bloom block.
    pub bloom_len: u32,
    /// Smallest version in the segment.
    pub min_version: u64,
    /// Largest version in the segment.
    pub max_version: u64,
    /// Setsum of all entries.
    pub setsum: Setsum,
    /// Smallest id.
    pub min_id: String,
    /// Largest id.
    pub max_id: String,
}

impl SegmentFooter {
    /// Footer plus tail, appended at `w`'s end.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut w = Writer::with_capacity(128 + self.min_id.len() + self.max_id.len());
        w.u16(self.version);
        w.u16(0);
        w.u64(self.entry_count);
        w.u64(self.tombstone_count);
        w.u32(self.block_count);
        w.u64(self.index_offset);
        w.u32(self.index_len);
        w.u64(self.bloom_offset);
        w.u32(self.bloom_len);
        w.u64(self.min_version);
        w.u64(self.max_version);
        w.bytes(&self.setsum.to_bytes());
        w.bytes16("segment.min_id", self.min_id.as_bytes())?;
        w.bytes16("segment.max_id", self.max_id.as_bytes())?;
        let footer_len = u32::try_from(w.len())
            .map_err(|_| FormatError::invalid("segment", "footer too large"))?;
        w.u32(footer_len);
        let crc = crc32(w.as_slice());
        w.u32(crc);
        w.bytes(&SEGMENT_MAGIC);
        out.extend_from_slice(w.as_slice());
        Ok(())
    }

    /// How many trailing bytes of the object hold footer and tail, read
    /// from `suffix` (any suffix of the object at least `TAIL_BYTES` long).
    pub fn suffix_len(suffix: &[u8], object_len: u64, object: &str) -> Result<usize> {
        let tail_at = suffix.len().checked_sub(TAIL_BYTES).ok_or_else(|| {
            corrupt(
                object,
                object_len,
                format!("segment of {} bytes is truncated", suffix.len()),
            )
        })?;
        let tail = suffix.get(tail_at..).unwrap_or_default();
        let magic = tail.get(8..12).unwrap_or_default();
        if magic != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic {
                kind: ObjectKind::Segment,
                object: object.to_owned(),
                expected: SEGMENT_MAGIC,
                found: magic.to_vec(),
            });
        }
        let footer_len = u32::from_le_bytes(
            tail.get(..4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        ) as u64;
        let needed = footer_len + TAIL_BYTES as u64;
        match usize::try_from(needed) {
            Ok(n) if needed <= object_len => Ok(n),
            _ => Err(corrupt(
                object,
                object_len.saturating_sub(TAIL_BYTES as u64),
                format!("footer length {footer_len} exceeds object length {object_len}"),
            )),
        }
    }

    /// Decodes the footer from a suffix of the object that is at least
    /// `suffix_len` bytes long. Ranged readers fetch `FOOTER_FETCH_BYTES`,
    /// ask `suffix_len`, and fetch more first if it is larger; a shorter
    /// suffix here is reported as corruption.
    pub fn decode(suffix: &[u8], object_len: u64, object: &str) -> Result<SegmentFooter> {
        let needed = Self::suffix_len(suffix, object_len, object)?;
        let start = suffix.len().checked_sub(needed).ok_or_else(|| {
            corrupt(
                object,
                object_len,
                format!("need {needed} trailing bytes, have {}", suffix.len()),
            )
        })?;
        let footer_offset = object_len - needed as u64;
        let region = suffix.get(start..).unwrap_or_default();
        // Covered by the CRC: footer and the footer_len field; then magic.
        let with_crc = region.get(..needed - 4).unwrap_or_default();
        let (covered, _) = split_crc(with_crc, object, footer_offset, "segment footer")?;
        let body = covered
            .get(..covered.len().saturating_sub(4))
            .unwrap_or_default();
        let mut r = Reader::new(body, ObjectKind::Segment, object, footer_offset);
        let version = r.u16("footer version")?;
        if version == 0 {
            return Err(r.corrupt("format version 0 is invalid"));
        }
        if version > SEGMENT_FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                kind: ObjectKind::Segment,
                object: object.to_owned(),
                found: version,
                supported: SEGMENT_FORMAT_VERSION,
            });
        }
        if r.u16("footer flags")? != 0 {
            return Err(r.corrupt("unknown footer flags"));
        }
        let f = SegmentFooter {
            version,
            entry_count: r.u64("entry_count")?,
            tombstone_count: r.u64("tombstone_count")?,
            block_count: r.u32("block_count")?,
            index_offset: r.u64("index_offset")?,
            index_len: r.u32("index_len")?,
            bloom_offset: r.u64("bloom_offset")?,
            bloom_len: r.u32("bloom_len")?,
            min_version: r.u64("min_version")?,
            max_version: r.u64("max_version")?,
            setsum: Setsum::from_bytes(
                &r.fixed::<SETSUM_BYTES>("setsum")?,
                ObjectKind::Segment,
                object,
            )?,
            min_id: r.str16("min_id")?.to_owned(),
            max_id: r.str16("max_id")?.to_owned(),
        };
        r.finish("segment footer")?;
        f.check_layout(footer_offset, object)
            .map_err(|reason| corrupt(object, footer_offset, reason))?;
        Ok(f)
    }

    fn check_layout(&self, footer_offset: u64, _object: &str) -> std::result::Result<(), String> {
        let index_end = self.index_offset.checked_add(u64::from(self.index_len));
        let bloom_end = self.bloom_offset.checked_add(u64::from(self.bloom_len));
        if index_end != Some(self.bloom_offset) || bloom_end != Some(footer_offset) {
            return Err(format!(
                "regions out of place: index {}+{}, bloom {}+{}, footer at {footer_offset}",
                self.index_offset, self.index_len, self.bloom_offset, self.bloom_len
            ));
        }
        if self.block_count == 0 || self.entry_count < u64::from(self.block_count) {
            return Err(format!(
                "{} entries in {} blocks",
                self.entry_count, self.block_count
            ));
        }
        if self.tombstone_count > self.entry_count
            || self.min_version > self.max_version
            || self.min_id > self.max_id
            || self.min_id.is_empty()
        {
            return Err("inconsistent counts, versions or id range".to_owned());
        }
        Ok(())
    }
}

/// The decoded block index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIndex {
    blocks: Vec<BlockHandle>,
}

impl SegmentIndex {
    pub(crate) fn encode(blocks: &[BlockHandle]) -> Result<Vec<u8>> {
        let mut w = Writer::with_capacity(blocks.len() * 40 + 8);
        w.count("segment blocks", blocks.len())?;
        for b in blocks {
            w.u64(b.offset);
            w.u32(b.len);
            w.u32(b.entries);
            w.u64(b.last_version);
            w.bytes16("block.last_id", b.last_id.as_bytes())?;
        }
        let crc = crc32(w.as_slice());
        w.u32(crc);
        Ok(w.into_vec())
    }

    /// Checks and decodes the index block against its footer.
    pub fn decode(bytes: &[u8], footer: &SegmentFooter, object: &str) -> Result<SegmentIndex> {
        let at = footer.index_offset;
        let (covered, _) = split_crc(bytes, object, at, "index block")?;
        let mut r = Reader::new(covered, ObjectKind::Segment, object, at);
        let n = r.count("index blocks", BLOCKS_MAX, 27)?;
        if n != footer.block_count as usize {
            return Err(r.corrupt(format!(
                "index has {n} blocks, footer says {}",
                footer.block_count
            )));
        }
        let mut blocks: Vec<BlockHandle> = Vec::with_capacity(n);
        let (mut next_offset, mut entries) = (0u64, 0u64);
        for _ in 0..n {
            let b = BlockHandle {
                offset: r.u64("block offset")?,
                len: r.u32("block len")?,
                entries: r.u32("block entries")?,
                last_version: r.u64("block last_version")?,
                last_id: r.str16("block last_id")?.to_owned(),
            };
            if b.offset != next_offset || b.len < 8 || b.entries == 0 {
                return Err(r.corrupt(format!(
                    "block at {} (len {}) breaks the layout",
                    b.offset, b.len
                )));
            }
            if let Some(prev) = blocks.last()
                && key_cmp(&prev.last_id, prev.last_version, &b.last_id, b.last_version)
                    != Ordering::Less
            {
                return Err(r.corrupt(format!("block last key {:?} out of order", b.last_id)));
            }
            next_offset = b.offset + u64::from(b.len);
            entries += u64::from(b.entries);
            blocks.push(b);
        }
        r.finish("index block")?;
        if next_offset != footer.index_offset || entries != footer.entry_count {
            return Err(corrupt(
                object,
                at,
                format!(
                    "index covers {next_offset} bytes and {entries} entries; footer says {} and {}",
                    footer.index_offset, footer.entry_count
                ),
            ));
        }
        if blocks.last().is_some_and(|b| b.last_id != footer.max_id) {
            return Err(corrupt(
                object,
                at,
                "last block does not end at max_id".to_owned(),
            ));
        }
        Ok(SegmentIndex { blocks })
    }

    /// All block handles in order.
    pub fn blocks(&self) -> &[BlockHandle] {
        &self.blocks
    }

    /// Checks and decodes block `block_no` from its bytes, and checks that
    /// it is the block the index describes: same length and entry count,
    /// ending at the indexed last key, starting after the previous block's
    /// last key. A block fetched from the wrong range or object is
    /// corruption, never silently wrong data.
    pub fn decode_block(&self, block_no: usize, bytes: &Bytes, object: &str) -> Result<Block> {
        let Some(h) = self.blocks.get(block_no) else {
            return Err(corrupt(object, 0, format!("no block {block_no}")));
        };
        let bad = |reason: String| corrupt(object, h.offset, format!("block {block_no}: {reason}"));
        if bytes.len() != h.len as usize {
            return Err(bad(format!("{} bytes, index says {}", bytes.len(), h.len)));
        }
        let block = Block::decode(bytes, object, h.offset)?;
        if block.len() != h.entries as usize {
            return Err(bad(format!(
                "{} entries, index says {}",
                block.len(),
                h.entries
            )));
        }
        let ends_right = block
            .last()
            .is_some_and(|(id, version)| id == h.last_id && version == h.last_version);
        let prev = block_no.checked_sub(1).and_then(|p| self.blocks.get(p));
        let starts_right = match (prev, block.first()) {
            (Some(p), Some((id, version))) => {
                key_cmp(&p.last_id, p.last_version, id, version) == Ordering::Less
            }
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !ends_right || !starts_right {
            return Err(bad("keys do not match the index".to_owned()));
        }
        Ok(block)
    }

    /// The first block that can hold an entry with id `>= id`, if any.
    pub fn seek(&self, id: &str) -> usize {
        self.blocks.partition_point(|b| b.last_id.as_str() < id)
    }
}

/// Compares (id, version) keys in segment order.
fn key_cmp(a_id: &str, a_v: u64, b_id: &str, b_v: u64) -> Ordering {
    a_id.as_bytes()
        .cmp(b_id.as_bytes())
        .then_with(|| b_v.cmp(&a_v))
}

fn corrupt(object: &str, offset: u64, reason: String) -> FormatError {
    FormatError::Corrupt {
        kind: ObjectKind::Segment,
        object: object.to_owned(),
        offset,
        reason,
    }
}
