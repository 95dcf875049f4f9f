//! A batch of a scan's visible entries, as the reading side hands them to
//! the consumer.
//!
//! An entry that a step read from one segment alone (nothing else in the
//! step to merge it with) stays in its block: the batch holds the block
//! and the entry's index, and makes the owned entry (allocating its id)
//! only when the consumer takes it. The reading side, which sets a first
//! scan's pace, then neither allocates an id nor merges per entry, and
//! the id is allocated on the consumer's thread, which hands it out.
//!
//! Invariants:
//! - Entries come out in the order they were put in.
//! - An entry kept in its block is one the block holds (its index comes
//!   from the block's own range); a batch that finds otherwise reports a
//!   bug (`Error::Inconsistent`) rather than skip the entry.
//! - A batch pins the blocks its entries are in: their bytes, as owned
//!   entries pinned them through their documents, and their slots (24
//!   bytes per entry of the block), so in a range of mostly tombstones a
//!   batch can hold up to about twice its blocks' bytes. The scan's batch
//!   caps (entries, bytes, steps) bound what a batch points into.

use std::collections::VecDeque;
use std::sync::Arc;

use reef_format::Entry;
use reef_format::segment::Block;

use crate::error::{Error, Result};

/// One entry of a batch.
#[derive(Debug)]
enum Item {
    /// Merged from several runs, or from the memtable.
    Owned(Entry),
    /// An entry of a block, by its index. The block's count is shared
    /// between the reading task (which clones it once per entry) and the
    /// consumer (which drops it), but a batch is built and then consumed,
    /// so a block's count moves between the two cores about once per
    /// batch, not per entry (a block split between two batches can be
    /// touched from both at once: slower, never wrong).
    InBlock(Arc<Block>, u32),
}

/// Visible entries in id order, some still in their blocks.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    items: VecDeque<Item>,
}

impl Batch {
    /// An empty batch with room for `n` entries.
    pub(crate) fn with_capacity(n: usize) -> Batch {
        Batch {
            items: VecDeque::with_capacity(n),
        }
    }

    /// Entries in the batch.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch has no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends an owned entry.
    pub(crate) fn push(&mut self, e: Entry) {
        self.items.push_back(Item::Owned(e));
    }

    /// Appends entry `i` of `block`, left in it. An index past `u32`
    /// (no decoded block has one) is made owned here instead.
    pub(crate) fn push_in_block(&mut self, block: &Arc<Block>, i: usize) {
        match u32::try_from(i) {
            Ok(n) => self.items.push_back(Item::InBlock(Arc::clone(block), n)),
            Err(_) => self.items.extend(block.entry(i).map(Item::Owned)),
        }
    }

    /// The first entry, taken out and made owned; `None` when empty.
    pub(crate) fn pop(&mut self, namespace: &str) -> Option<Result<Entry>> {
        Some(match self.items.pop_front()? {
            Item::Owned(e) => Ok(e),
            Item::InBlock(block, n) => block.entry(n as usize).ok_or_else(|| Error::Inconsistent {
                namespace: namespace.to_owned(),
                reason: format!(
                    "a scan batch points past its block's {} entries",
                    block.len()
                ),
            }),
        })
    }

    /// Entries left in their blocks.
    #[cfg(test)]
    pub(crate) fn in_block(&self) -> usize {
        self.items
            .iter()
            .filter(|item| matches!(item, Item::InBlock(..)))
            .count()
    }

    /// Bytes of the entries' ids and documents.
    #[cfg(test)]
    pub(crate) fn payload_bytes(&self) -> usize {
        self.items
            .iter()
            .map(|item| match item {
                Item::Owned(e) => e.payload_bytes(),
                Item::InBlock(block, n) => block.payload_bytes(*n as usize),
            })
            .sum()
    }
}
