//! Reading segments: `Segment` over a whole object held in memory, and
//! `PointLookup`, the block-by-block lookup a ranged reader drives when it
//! fetches blocks on demand (the object-store layer does that, async).
//!
//! Invariant: lookups honour a snapshot version: they return the newest
//! entry of an id whose version is `<= snapshot`, which may sit in a later
//! block than the id's newest entry.

use std::ops::Bound;

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::{FormatError, ObjectKind, Result};
use crate::segment::block::Block;
use crate::segment::bloom::Bloom;
use crate::segment::index::{SegmentFooter, SegmentIndex};
use crate::setsum::Setsum;
use crate::value::decode_document;

/// A segment whose bytes are all in memory.
#[derive(Clone, Debug)]
pub struct Segment {
    bytes: Bytes,
    object: String,
    footer: SegmentFooter,
    index: SegmentIndex,
    bloom: Bloom,
}

/// The next step of a point lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// Fetch and decode this block (index into `SegmentIndex::blocks`), then
    /// call `PointLookup::feed`.
    Fetch(usize),
    /// The lookup is over: the entry, or `None` when the segment has no
    /// visible version of the id.
    Done(Option<Entry>),
}

/// A point lookup for one id at one snapshot, driven by the caller.
#[derive(Debug)]
pub struct PointLookup<'a> {
    index: &'a SegmentIndex,
    id: &'a str,
    snapshot: u64,
}

impl<'a> PointLookup<'a> {
    /// Starts a lookup; consults the bloom filter and the index.
    pub fn start(
        index: &'a SegmentIndex,
        bloom: &Bloom,
        id: &'a str,
        snapshot: u64,
    ) -> (PointLookup<'a>, Probe) {
        let lookup = PointLookup {
            index,
            id,
            snapshot,
        };
        if !bloom.may_contain(id) {
            return (lookup, Probe::Done(None));
        }
        let first = index.seek(id);
        let probe = if first < index.blocks().len() {
            Probe::Fetch(first)
        } else {
            Probe::Done(None)
        };
        (lookup, probe)
    }

    /// Continues with block number `block_no`, as fetched for a `Fetch`.
    pub fn feed(&self, block_no: usize, block: &Block) -> Probe {
        for i in block.lower_bound(self.id)..block.len() {
            if block.id(i) != self.id {
                return Probe::Done(None);
            }
            if block.version(i) <= self.snapshot {
                return Probe::Done(block.entry(i));
            }
        }
        // Every remaining entry was our id but too new: older versions may
        // continue in the next block.
        let next = block_no + 1;
        let continues = block.last().is_some_and(|(id, _)| id == self.id);
        if continues && next < self.index.blocks().len() {
            Probe::Fetch(next)
        } else {
            Probe::Done(None)
        }
    }
}

impl Segment {
    /// Checks footer, index and bloom filter of a whole segment object.
    /// Blocks are checked as they are read.
    pub fn open(bytes: Bytes, object: &str) -> Result<Segment> {
        let object_len = bytes.len() as u64;
        let footer = SegmentFooter::decode(&bytes, object_len, object)?;
        let region = |offset: u64, len: u32| -> Result<&[u8]> {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            start
                .checked_add(len as usize)
                .and_then(|end| bytes.get(start..end))
                .ok_or_else(|| FormatError::Corrupt {
                    kind: ObjectKind::Segment,
                    object: object.to_owned(),
                    offset,
                    reason: format!("region {offset}+{len} outside object"),
                })
        };
        let index = SegmentIndex::decode(
            region(footer.index_offset, footer.index_len)?,
            &footer,
            object,
        )?;
        let bloom = Bloom::decode(
            region(footer.bloom_offset, footer.bloom_len)?,
            object,
            footer.bloom_offset,
        )?;
        Ok(Segment {
            object: object.to_owned(),
            footer,
            index,
            bloom,
            bytes,
        })
    }

    /// The footer.
    pub fn footer(&self) -> &SegmentFooter {
        &self.footer
    }

    /// The block index.
    pub fn index(&self) -> &SegmentIndex {
        &self.index
    }

    /// Checks and decodes block `block_no` (against the index too).
    pub fn read_block(&self, block_no: usize) -> Result<Block> {
        let h = self
            .index
            .blocks()
            .get(block_no)
            .ok_or_else(|| FormatError::Corrupt {
                kind: ObjectKind::Segment,
                object: self.object.clone(),
                offset: 0,
                reason: format!("no block {block_no}"),
            })?;
        // The index was validated against the footer: blocks tile the data
        // region, which lies inside the object.
        let start = h.offset as usize;
        let bytes = self.bytes.slice(start..start + h.len as usize);
        self.index.decode_block(block_no, &bytes, &self.object)
    }

    /// Reads every block and checks the footer's claims against the
    /// entries: setsum, entry and tombstone counts, version and id range,
    /// and that every document decodes. What `verify --deep` runs.
    pub fn verify(&self) -> Result<()> {
        let (mut sum, mut n, mut tombstones) = (Setsum::EMPTY, 0u64, 0u64);
        let (mut min_v, mut max_v) = (u64::MAX, 0u64);
        let mut first_id = None;
        for e in self.iter() {
            let e = e?;
            sum = sum.add(&e.setsum());
            n += 1;
            tombstones += u64::from(e.is_tombstone());
            min_v = min_v.min(e.version);
            max_v = max_v.max(e.version);
            if let Some(doc) = e.doc() {
                decode_document(doc, &self.object)?;
            }
            first_id.get_or_insert(e.id);
        }
        let f = &self.footer;
        let claims_hold = sum == f.setsum
            && n == f.entry_count
            && tombstones == f.tombstone_count
            && min_v == f.min_version
            && max_v == f.max_version
            && first_id.as_deref() == Some(f.min_id.as_str());
        if claims_hold {
            Ok(())
        } else {
            Err(FormatError::Corrupt {
                kind: ObjectKind::Segment,
                object: self.object.clone(),
                offset: 0,
                reason: format!(
                    "footer does not match contents: {n} entries ({tombstones} tombstones), \
                     versions {min_v}..={max_v}, setsum {}",
                    sum.to_hex()
                ),
            })
        }
    }

    /// The newest entry of `id` with version `<= snapshot` (use `u64::MAX`
    /// for the latest), tombstones included.
    pub fn get(&self, id: &str, snapshot: u64) -> Result<Option<Entry>> {
        let (lookup, mut probe) = PointLookup::start(&self.index, &self.bloom, id, snapshot);
        loop {
            match probe {
                Probe::Done(found) => return Ok(found),
                Probe::Fetch(n) => probe = lookup.feed(n, &self.read_block(n)?),
            }
        }
    }

    /// Every entry, in segment order.
    pub fn iter(&self) -> SegmentIter<'_> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// Entries with ids within the bounds, in segment order.
    pub fn range<'a>(&'a self, from: Bound<&str>, to: Bound<&str>) -> SegmentIter<'a> {
        let block = match from {
            Bound::Included(id) | Bound::Excluded(id) => self.index.seek(id),
            Bound::Unbounded => 0,
        };
        SegmentIter {
            segment: self,
            next_block: block,
            current: Vec::new().into_iter(),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            done: false,
        }
    }
}

/// Iterator over a range of a segment; yields an error at most once, then
/// ends.
pub struct SegmentIter<'a> {
    segment: &'a Segment,
    next_block: usize,
    current: std::vec::IntoIter<Entry>,
    from: Bound<String>,
    to: Bound<String>,
    done: bool,
}

impl Iterator for SegmentIter<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        while !self.done {
            if let Some(e) = self.current.next() {
                if !super::after_from(&e.id, self.from.as_ref().map(String::as_str)) {
                    continue;
                }
                if !super::before_to(&e.id, self.to.as_ref().map(String::as_str)) {
                    self.done = true;
                    return None;
                }
                return Some(Ok(e));
            }
            if self.next_block >= self.segment.index.blocks().len() {
                self.done = true;
                return None;
            }
            match self.segment.read_block(self.next_block) {
                Ok(block) => {
                    self.next_block += 1;
                    self.current = block.into_entries().into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}
