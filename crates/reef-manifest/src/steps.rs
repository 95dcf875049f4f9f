//! Walking several segments' entries over an id range in steps, so that a
//! scan or a compaction holds a bounded read-ahead of blocks per segment
//! (a few MiB), never a segment.
//!
//! A step ends at the smallest last id of the blocks the segments would
//! fetch next (a caller may end it sooner); `read` returns each segment's
//! entries from where the last step ended up to that id, inclusive, and
//! the next step starts strictly after it.
//!
//! Invariants:
//! - Every version of an id lies within one step: a step ends *at* an id
//!   and `range_step` follows its versions into the next block, so a merge
//!   of one step's runs sees all of an id's versions together.
//! - Every step makes progress: each candidate end is the last id of a
//!   block that ends after the previous step's end.
//! - Memory: per segment, the run of blocks in use (at most
//!   `READ_AHEAD_BYTES_MAX`, 1 MiB: `SegmentReader::range_step`'s
//!   read-ahead, which starts at one block and doubles per fetch), on a
//!   long walk the next run being fetched, and the run before while the
//!   step's entries still share its bytes: about 3 MiB. Plus what `read`
//!   returns for the step, on top
//!   of what each open `SegmentReader` keeps: its index (one entry per
//!   ~32 KiB block) and bloom filter (10 bits per id), about 0.3% of a
//!   segment of 1 KiB documents. So the walk's memory grows with the number of segments
//!   walked and their ids, never with their bytes.

use std::ops::Bound;
use std::sync::Arc;

use reef_format::Entry;

use crate::error::Result;
use crate::segments::{BlockSlice, ReadAhead, SegmentReader};

/// One segment's place: the reader and the blocks it read ahead.
struct Cursor {
    segment: Arc<SegmentReader>,
    ahead: ReadAhead,
}

/// The walk over several segments; see the module docs.
pub struct RangeSteps {
    cursors: Vec<Cursor>,
    lower: Bound<String>,
}

impl RangeSteps {
    /// A walk over `segments` from `lower` on, reading ahead no further
    /// than `upper` (the walk's end).
    pub fn new(
        segments: impl IntoIterator<Item = Arc<SegmentReader>>,
        lower: Bound<String>,
        upper: Bound<String>,
    ) -> Self {
        RangeSteps {
            cursors: segments
                .into_iter()
                .map(|segment| Cursor {
                    segment,
                    ahead: ReadAhead::new(upper.clone()),
                })
                .collect(),
            lower,
        }
    }

    /// Where the next step starts.
    pub fn lower(&self) -> Bound<&str> {
        as_str(&self.lower)
    }

    /// The id the next step should end at: the smallest last id of the
    /// blocks the segments would read next; `None` when every segment is
    /// past `lower`.
    pub fn next_end(&mut self) -> Option<String> {
        let lower = as_str(&self.lower);
        let mut end: Option<&str> = None;
        self.cursors.retain(|c| {
            let n = c.segment.first_block(lower);
            c.segment.block_last_id(n).is_some()
        });
        for c in &self.cursors {
            let n = c.segment.first_block(lower);
            if let Some(last) = c.segment.block_last_id(n)
                && end.is_none_or(|e| last < e)
            {
                end = Some(last);
            }
        }
        end.map(str::to_owned)
    }

    /// Every segment's entries (all versions, segment order) after the
    /// step's start and within `to`. After `Included(id)` the next step
    /// starts after `id`; any other bound ends the walk for the caller.
    pub async fn read(&mut self, to: Bound<&str>) -> Result<Vec<Vec<Entry>>> {
        let runs = self.read_slices(to).await?;
        Ok(runs
            .iter()
            .map(|run| BlockSlice::run_entries(run))
            .collect())
    }

    /// `read`'s runs as slices of the blocks that hold their entries
    /// (`SegmentReader::range_step`), one run per segment.
    pub async fn read_slices(&mut self, to: Bound<&str>) -> Result<Vec<Vec<BlockSlice>>> {
        let mut runs = Vec::with_capacity(self.cursors.len());
        let lower = as_str(&self.lower);
        for c in &mut self.cursors {
            runs.push(c.segment.range_step(lower, to, &mut c.ahead).await?);
        }
        if let Bound::Included(id) = to {
            self.lower = Bound::Excluded(id.to_owned());
        }
        Ok(runs)
    }
}

/// `Bound<String>` as `Bound<&str>`.
pub fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
