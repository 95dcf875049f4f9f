//! Segments: immutable, sorted runs of entries, the unit of folding and
//! compaction (`seg/<id>.seg`).
//!
//! ```text
//! [data block 0] ... [data block n-1] [index block] [bloom block] [footer] [tail: 12 bytes]
//! ```
//! Entries are sorted by id ascending, then version descending, so one
//! segment may keep several versions of an id for snapshots. Each block,
//! the index, the bloom filter and the footer carry their own CRC, so a
//! reader can fetch only the tail (`FOOTER_FETCH_BYTES`), then the index and
//! bloom, then just the blocks it needs, and check each piece on arrival.
//!
//! Submodules: `block` (data blocks), `bloom`, `index` (index + footer),
//! `builder`, `reader`. Byte tables: docs/format.md.

mod block;
mod bloom;
mod builder;
mod index;
mod reader;

pub(crate) use block::key_order;
pub use block::{Block, SLOT_BYTES};
pub use bloom::Bloom;
pub use builder::{BuiltSegment, SegmentBuilder, SegmentOptions};
pub use index::{
    BlockHandle, FOOTER_FETCH_BYTES, SEGMENT_FORMAT_VERSION, SEGMENT_MAGIC, SegmentFooter,
    SegmentIndex, TAIL_BYTES,
};
pub use reader::{PointLookup, Probe, Segment, SegmentIter};

use std::ops::Bound;

/// Whether `id` is at or after the lower bound of a range (the one bound
/// check every reader of sorted runs shares).
pub fn after_from(id: &str, from: Bound<&str>) -> bool {
    match from {
        Bound::Included(f) => id >= f,
        Bound::Excluded(f) => id > f,
        Bound::Unbounded => true,
    }
}

/// Whether `id` is before the upper bound of a range.
pub fn before_to(id: &str, to: Bound<&str>) -> bool {
    match to {
        Bound::Included(t) => id <= t,
        Bound::Excluded(t) => id < t,
        Bound::Unbounded => true,
    }
}
