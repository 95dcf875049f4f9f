//! `SegmentBuilder`: turns entries given in segment order into one segment
//! object.
//!
//! Invariant: `finish` re-opens what it built (footer, index, bloom) before
//! returning it, so a builder bug fails here rather than after the PUT.

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::{FormatError, Result};
use crate::segment::block::{BlockBuilder, key_order};
use crate::segment::bloom::{Bloom, key_hash};
use crate::segment::index::{BlockHandle, SEGMENT_FORMAT_VERSION, SegmentFooter, SegmentIndex};
use crate::segment::reader::Segment;
use crate::setsum::Setsum;

/// Tuning knobs of a segment. Changing them never changes what readers
/// accept; they are not part of the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    /// A block is closed once it reaches this many bytes (default 32 KiB).
    /// An entry larger than this gets a block of its own.
    pub block_bytes_target: usize,
    /// Bloom filter bits per distinct id (default 10, ~1% false positives).
    pub bloom_bits_per_key: u32,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            block_bytes_target: 32 << 10,
            bloom_bits_per_key: 10,
        }
    }
}

/// A finished segment: its bytes and its footer (what a manifest records).
#[derive(Clone, Debug)]
pub struct BuiltSegment {
    /// The whole object.
    pub bytes: Bytes,
    /// Its decoded footer.
    pub footer: SegmentFooter,
}

/// Builds one segment from entries in (id ascending, version descending)
/// order.
pub struct SegmentBuilder {
    opts: SegmentOptions,
    out: Vec<u8>,
    block: BlockBuilder,
    handles: Vec<BlockHandle>,
    id_hashes: Vec<u64>,
    /// The first id added (the footer's `min_id`).
    first: Option<String>,
    /// The last (id, version) added: only keys are kept, never the entry,
    /// whose value may share a large buffer (a compaction's read-ahead
    /// run) the builder must not pin. The id's buffer is reused.
    last: Option<(String, u64)>,
    entry_count: u64,
    tombstone_count: u64,
    min_version: u64,
    max_version: u64,
    setsum: Setsum,
}

impl SegmentBuilder {
    /// An empty builder.
    pub fn new(opts: SegmentOptions) -> SegmentBuilder {
        SegmentBuilder {
            opts,
            out: Vec::new(),
            block: BlockBuilder::default(),
            handles: Vec::new(),
            id_hashes: Vec::new(),
            first: None,
            last: None,
            entry_count: 0,
            tombstone_count: 0,
            min_version: u64::MAX,
            max_version: 0,
            setsum: Setsum::EMPTY,
        }
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Bytes written so far, including the open block.
    pub fn estimated_bytes(&self) -> usize {
        self.out.len() + self.block.estimated_bytes()
    }

    /// Appends an entry; it must sort strictly after the previous one.
    pub fn add(&mut self, e: &Entry) -> Result<()> {
        e.check_storable()
            .map_err(|reason| FormatError::invalid(format!("segment entry {:?}", e.id), reason))?;
        if let Some((prev_id, prev_version)) = &self.last
            && key_order(prev_id, *prev_version, &e.id, e.version) != std::cmp::Ordering::Less
        {
            return Err(FormatError::invalid(
                "segment entry",
                format!(
                    "({:?}, v{}) does not sort after ({prev_id:?}, v{prev_version})",
                    e.id, e.version
                ),
            ));
        }
        // An entry that would overflow a non-empty block starts a new one,
        // so a large entry gets a block to itself.
        let entry_bytes = e.payload_bytes() + 19;
        if !self.block.is_empty()
            && self.block.estimated_bytes() + entry_bytes > self.opts.block_bytes_target
        {
            self.flush_block()?;
        }
        if self.last.as_ref().is_none_or(|(prev, _)| *prev != e.id) {
            self.id_hashes.push(key_hash(&e.id));
        }
        self.block.add(e)?;
        self.entry_count += 1;
        self.tombstone_count += u64::from(e.is_tombstone());
        self.min_version = self.min_version.min(e.version);
        self.max_version = self.max_version.max(e.version);
        self.setsum = self.setsum.add(&e.setsum());
        if self.first.is_none() {
            self.first = Some(e.id.clone());
        }
        match &mut self.last {
            Some((id, version)) => {
                id.clear();
                id.push_str(&e.id);
                *version = e.version;
            }
            None => self.last = Some((e.id.clone(), e.version)),
        }
        if self.block.estimated_bytes() >= self.opts.block_bytes_target {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        let (Some((last_id, last_version)), false) = (&self.last, self.block.is_empty()) else {
            return Ok(());
        };
        let entries = self.block.entries() as u32;
        let bytes = self.block.finish()?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| FormatError::invalid("segment", "block exceeds 4 GiB"))?;
        self.handles.push(BlockHandle {
            offset: self.out.len() as u64,
            len,
            entries,
            last_id: last_id.clone(),
            last_version: *last_version,
        });
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    /// Writes index, bloom and footer, verifies the result, and returns it.
    pub fn finish(mut self) -> Result<BuiltSegment> {
        self.flush_block()?;
        let (Some(first), Some(last)) = (self.first.take(), self.last.take()) else {
            return Err(FormatError::invalid(
                "segment",
                "a segment needs at least one entry",
            ));
        };
        let index_offset = self.out.len() as u64;
        let index = SegmentIndex::encode(&self.handles)?;
        let bloom = Bloom::build(&self.id_hashes, self.opts.bloom_bits_per_key).encode();
        let region_len = |b: &[u8]| {
            u32::try_from(b.len())
                .map_err(|_| FormatError::invalid("segment", "region exceeds 4 GiB"))
        };
        let footer = SegmentFooter {
            version: SEGMENT_FORMAT_VERSION,
            entry_count: self.entry_count,
            tombstone_count: self.tombstone_count,
            block_count: self.handles.len() as u32,
            index_offset,
            index_len: region_len(&index)?,
            bloom_offset: index_offset + index.len() as u64,
            bloom_len: region_len(&bloom)?,
            min_version: self.min_version,
            max_version: self.max_version,
            setsum: self.setsum,
            min_id: first,
            max_id: last.0,
        };
        let mut tail = Vec::new();
        footer.encode_into(&mut tail)?;
        let mut out = self.out;
        // Room for index, bloom and footer at once: growing by doubling here
        // would give a segment of just under 64 MiB a 128 MiB buffer, kept
        // by its bytes until the PUT is done.
        out.reserve_exact(index.len() + bloom.len() + tail.len());
        out.extend_from_slice(&index);
        out.extend_from_slice(&bloom);
        out.extend_from_slice(&tail);
        let bytes = Bytes::from(out);
        // Check twice: what we hand to the PUT must open cleanly.
        let reopened = Segment::open(bytes.clone(), "(segment being built)")?;
        if reopened.footer() != &footer {
            return Err(FormatError::invalid(
                "segment",
                "footer did not survive a round trip",
            ));
        }
        Ok(BuiltSegment { bytes, footer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Document, Limits, Value, encode_document};

    fn doc(len: usize) -> Bytes {
        let d: Document = [("s".to_owned(), Value::String("x".repeat(len)))].into();
        Bytes::from(encode_document(&d, &Limits::default()).unwrap())
    }

    #[test]
    fn a_large_entry_gets_a_block_of_its_own() {
        let mut b = SegmentBuilder::new(SegmentOptions {
            block_bytes_target: 1024,
            bloom_bits_per_key: 10,
        });
        b.add(&Entry::put("a", 1, doc(10))).unwrap();
        b.add(&Entry::put("b", 1, doc(5000))).unwrap();
        b.add(&Entry::put("c", 1, doc(10))).unwrap();
        let built = b.finish().unwrap();
        let seg = Segment::open(built.bytes, "s").unwrap();
        let per_block: Vec<u32> = seg.index().blocks().iter().map(|h| h.entries).collect();
        assert_eq!(per_block, vec![1, 1, 1]);
    }

    #[test]
    fn unreadable_entries_are_refused_before_writing() {
        let mut b = SegmentBuilder::new(SegmentOptions::default());
        let err = b
            .add(&Entry::put("a", 1, Bytes::from_static(b"junk")))
            .unwrap_err();
        assert!(err.to_string().contains("\"a\""), "{err}");
        assert!(b.finish().is_err(), "nothing was added");
    }
}
