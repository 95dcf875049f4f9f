//! Reading segments from a bucket by byte range, with blocks cached.
//!
//! Opening costs two ranged GETs: the last `FOOTER_FETCH_BYTES` before the
//! recorded end, with the object's real size (tail and footer, and proof
//! that nothing was appended or cut; a third GET only for a footer with ids over
//! ~1 KiB each), then the index and bloom filter together. A point read then costs nothing if
//! the bloom filter rules the id out, and otherwise one GET per block the
//! lookup visits that is not cached. All lookup logic is reef-format's
//! (`PointLookup`, `SegmentIndex::seek`/`decode_block`); this module only
//! fetches.

use std::collections::VecDeque;
use std::ops::{Bound, Range};
use std::sync::Arc;

use bytes::Bytes;
use reef_format::segment::{
    Block, Bloom, FOOTER_FETCH_BYTES, PointLookup, Probe, SegmentFooter, SegmentIndex, after_from,
    before_to,
};
use reef_format::{Entry, FormatError, ObjectKind};

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::store::DynStore;

/// Entries `entries` of `block`: a step's share of one block, its
/// entries in segment order.
#[derive(Debug, Clone)]
pub struct BlockSlice {
    /// The block (decoded, checked against the segment's index).
    pub block: Arc<Block>,
    /// The entries of the block in the step.
    pub entries: Range<usize>,
}

impl BlockSlice {
    /// The slice's entries, made owned (their documents share the block's
    /// bytes).
    pub fn to_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.clone().filter_map(|i| self.block.entry(i))
    }

    /// A run of slices (one segment's share of a step) as owned entries,
    /// for a merge.
    pub fn run_entries(run: &[BlockSlice]) -> Vec<Entry> {
        let mut out = Vec::with_capacity(run.iter().map(|s| s.entries.len()).sum());
        out.extend(run.iter().flat_map(BlockSlice::to_entries));
        out
    }
}

/// An opened segment: footer, index and bloom in memory, blocks on demand.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    store: DynStore,
    key: Arc<str>,
    /// The object's size, as checked at open.
    object_bytes: u64,
    /// Identity of these bytes in the cache key.
    identity: u64,
    footer: SegmentFooter,
    index: SegmentIndex,
    bloom: Bloom,
    cache: Arc<BlockCache>,
}

impl SegmentReader {
    /// Opens segment `key`. Pass `object_len` when known (the manifest
    /// records it) to save a HEAD.
    pub async fn open(
        store: DynStore,
        key: &str,
        object_len: Option<u64>,
        cache: Arc<BlockCache>,
    ) -> Result<SegmentReader> {
        let len = match object_len {
            Some(len) => len,
            None => {
                store
                    .head(key)
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        key: key.to_owned(),
                    })?
                    .size
            }
        };
        let tail_start = len.saturating_sub(FOOTER_FETCH_BYTES as u64);
        // The same GET tells the object's real size: bytes appended after
        // the footer, or cut, would otherwise pass unseen, since the footer
        // and its checksum sit where the manifest says the object ends.
        let corrupt = |actual: u64| {
            Error::Format(FormatError::Corrupt {
                kind: ObjectKind::Segment,
                object: key.to_owned(),
                offset: actual.min(len),
                reason: format!("object is {actual} bytes, but {len} were recorded"),
            })
        };
        let (mut suffix, actual) = match store.get_range_sized(key, tail_start..len).await {
            Ok(sized) => sized,
            Err(Error::RangeOutOfBounds { size, .. }) => return Err(corrupt(size)),
            Err(e) => return Err(e),
        };
        if actual != len {
            return Err(corrupt(actual));
        }
        let needed = SegmentFooter::suffix_len(&suffix, len, key)? as u64;
        if needed > suffix.len() as u64 {
            suffix = store.get_range(key, len - needed..len).await?;
        }
        let footer = SegmentFooter::decode(&suffix, len, key)?;
        // Index and bloom are adjacent: one request for both.
        let meta_start = footer.index_offset;
        let meta = store
            .get_range(
                key,
                meta_start..footer.bloom_offset + u64::from(footer.bloom_len),
            )
            .await?;
        let slice = |r: Range<u64>| -> Result<&[u8]> {
            meta.get((r.start - meta_start) as usize..(r.end - meta_start) as usize)
                .ok_or_else(|| {
                    Error::Format(FormatError::Corrupt {
                        kind: ObjectKind::Segment,
                        object: key.to_owned(),
                        offset: r.start,
                        reason: "index/bloom region shorter than the footer says".to_owned(),
                    })
                })
        };
        let index_range = footer.index_offset..footer.index_offset + u64::from(footer.index_len);
        let bloom_range = footer.bloom_offset..footer.bloom_offset + u64::from(footer.bloom_len);
        let index = SegmentIndex::decode(slice(index_range)?, &footer, key)?;
        let bloom = Bloom::decode(slice(bloom_range)?, key, footer.bloom_offset)?;
        let mut id_bytes = footer.setsum.to_bytes().to_vec();
        id_bytes.extend_from_slice(&len.to_le_bytes());
        Ok(SegmentReader {
            store,
            object_bytes: len,
            identity: xxhash_rust::xxh3::xxh3_64(&id_bytes),
            key: Arc::from(key),
            footer,
            index,
            bloom,
            cache,
        })
    }

    /// The footer (what the manifest copies).
    pub fn footer(&self) -> &SegmentFooter {
        &self.footer
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's size (checked against the store when opened).
    pub fn object_bytes(&self) -> u64 {
        self.object_bytes
    }

    /// Block `n`, from the cache or fetched, checked against the index.
    pub async fn block(&self, n: usize) -> Result<Arc<Block>> {
        let cache_key = (Arc::clone(&self.key), self.identity, n);
        if let Some(b) = self.cache.get(&cache_key) {
            return Ok(b);
        }
        let h = self.index.blocks().get(n).ok_or_else(|| self.no_block(n))?;
        let bytes: Bytes = self
            .store
            .get_range(&self.key, h.offset..h.offset + u64::from(h.len))
            .await?;
        let block = Arc::new(self.index.decode_block(n, &bytes, &self.key)?);
        self.cache.insert(cache_key, Arc::clone(&block));
        Ok(block)
    }

    /// The newest entry of `id` with version `<= snapshot`, tombstones
    /// included.
    pub async fn get(&self, id: &str, snapshot: u64) -> Result<Option<Entry>> {
        let (lookup, mut probe) = PointLookup::start(&self.index, &self.bloom, id, snapshot);
        loop {
            match probe {
                Probe::Done(found) => return Ok(found),
                Probe::Fetch(n) => probe = lookup.feed(n, &*self.block(n).await?),
            }
        }
    }

    /// The first block that can hold an entry with an id after `from`.
    pub fn first_block(&self, from: Bound<&str>) -> usize {
        match from {
            Bound::Included(id) => self.index.seek(id),
            Bound::Excluded(id) => self
                .index
                .blocks()
                .partition_point(|b| b.last_id.as_str() <= id),
            Bound::Unbounded => 0,
        }
    }

    /// Id of the last entry of block `n`, if there is such a block.
    pub fn block_last_id(&self, n: usize) -> Option<&str> {
        self.index.blocks().get(n).map(|b| b.last_id.as_str())
    }

    /// Every entry (all versions, segment order) with an id within the
    /// bounds, fetching only blocks that can hold one. `ahead` keeps the
    /// blocks fetched but not yet passed: a caller walking a range in
    /// steps, each starting where the last ended, fetches every block once,
    /// in GETs that grow from one block to `READ_AHEAD_BYTES_MAX` (never
    /// past `ahead`'s limit).
    ///
    /// The entries come as slices of the blocks that hold them: nothing is
    /// copied out of a block. The blocks are consecutive blocks of this
    /// segment, each checked against the index (which orders them), so
    /// the slices' entries are in segment order.
    pub async fn range_step(
        self: &Arc<Self>,
        from: Bound<&str>,
        to: Bound<&str>,
        ahead: &mut ReadAhead,
    ) -> Result<Vec<BlockSlice>> {
        let mut out = Vec::new();
        let mut n = self.first_block(from);
        while n < self.index.blocks().len() {
            if !before_to(self.block_first_bound(n), to) {
                break;
            }
            let block = match ahead.get(n) {
                Some(b) => b,
                None => {
                    let prefetched = match ahead.take_prefetched(n) {
                        Some(task) => match task.await {
                            Ok(fetched) => Some(fetched),
                            // A bug in the task is this walk's bug.
                            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                            // Cancelled as the runtime shuts down: fetch
                            // here.
                            Err(_) => None,
                        },
                        None => None,
                    };
                    let blocks = match prefetched {
                        Some(fetched) => fetched?,
                        None => {
                            let count = ahead.window(self, n);
                            self.blocks(n, count).await?
                        }
                    };
                    let first = blocks.first().cloned().ok_or_else(|| self.no_block(n))?;
                    ahead.refill(n, blocks);
                    first
                }
            };
            // Entries are in id order (checked when the block was
            // decoded): skip those before `from` by binary search. A walk
            // over overlapping segments starts many steps inside one
            // block; skipping one by one made each step cost the block.
            let start = block.partition_point(|id| !after_from(id, from));
            let end = block.partition_point(|id| before_to(id, to)).max(start);
            let whole = end == block.len();
            if start < end {
                out.push(BlockSlice {
                    block,
                    entries: start..end,
                });
            }
            if !whole {
                return Ok(out);
            }
            // Passed whole (a step's end may peek into the next block).
            ahead.maybe_prefetch(self, n);
            n += 1;
        }
        Ok(out)
    }

    /// An id no entry of block `n` is before: the previous block's last id
    /// (or the segment's first id).
    fn block_first_bound(&self, n: usize) -> &str {
        match n.checked_sub(1) {
            None => self.footer.min_id.as_str(),
            Some(prev) => self.block_last_id(prev).unwrap_or_default(),
        }
    }

    /// Blocks `first..first + count` (fewer at the segment's end), for a
    /// walk's read-ahead, each from the cache or fetched: a run of uncached
    /// blocks adjacent in the object costs one ranged GET.
    ///
    /// The blocks fetched fill the cache's free room but never evict: a
    /// long scan or a compaction reads far more than the cache holds, and
    /// evicting for it would only push out the blocks point reads use,
    /// while data that fits stays cached for the next scan. A block cached
    /// is copied out of its run (so it does not pin the run's bytes); one
    /// not cached shares them (at most `READ_AHEAD_BYTES_MAX`) and is
    /// dropped once the walk passes it.
    pub async fn blocks(&self, first: usize, count: usize) -> Result<Vec<Arc<Block>>> {
        let handles = self.index.blocks();
        let end = first.saturating_add(count).min(handles.len());
        let mut out = Vec::with_capacity(end.saturating_sub(first));
        let mut n = first;
        while n < end {
            let cache_key = (Arc::clone(&self.key), self.identity, n);
            if let Some(b) = self.cache.get(&cache_key) {
                out.push(b);
                n += 1;
                continue;
            }
            // The run: uncached blocks, each starting where the last ended.
            let mut run_end = n + 1;
            while run_end < end
                && handles.get(run_end).map(|h| h.offset)
                    == handles
                        .get(run_end - 1)
                        .map(|h| h.offset + u64::from(h.len))
                && !self
                    .cache
                    .contains(&(Arc::clone(&self.key), self.identity, run_end))
            {
                run_end += 1;
            }
            let (start, stop) = match (handles.get(n), handles.get(run_end - 1)) {
                (Some(a), Some(b)) => (a.offset, b.offset + u64::from(b.len)),
                _ => break,
            };
            let bytes = self.store.get_range(&self.key, start..stop).await?;
            for m in n..run_end {
                let h = handles.get(m).ok_or_else(|| self.no_block(m))?;
                let at = (h.offset - start) as usize;
                let block_end = at + h.len as usize;
                if block_end > bytes.len() {
                    return Err(self.no_block(m));
                }
                let block = self
                    .index
                    .decode_block(m, &bytes.slice(at..block_end), &self.key)?;
                let cache_it = self.cache.has_room(block.mem_bytes());
                // A cached block is copied out of a run of several, so as
                // not to pin the run; otherwise it shares the run's bytes.
                let block = Arc::new(if cache_it && run_end > n + 1 {
                    block.unshared()
                } else {
                    block
                });
                if cache_it {
                    let cache_key = (Arc::clone(&self.key), self.identity, m);
                    self.cache.insert(cache_key, Arc::clone(&block));
                }
                out.push(block);
            }
            n = run_end;
        }
        Ok(out)
    }

    fn no_block(&self, n: usize) -> Error {
        Error::Format(FormatError::Corrupt {
            kind: ObjectKind::Segment,
            object: self.key.to_string(),
            offset: 0,
            reason: format!("no block {n}"),
        })
    }

    /// Up to `limit` entries (all versions, segment order) with ids within
    /// the bounds.
    pub async fn scan(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let first = match from {
            Bound::Included(id) | Bound::Excluded(id) => self.index.seek(id),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for n in first..self.index.blocks().len() {
            let block = self.block(n).await?;
            for i in 0..block.len() {
                let id = block.id(i);
                if !before_to(id, to) || out.len() >= limit {
                    return Ok(out);
                }
                if after_from(id, from) {
                    out.extend(block.entry(i));
                }
            }
        }
        Ok(out)
    }
}

/// The most a walker reads ahead of where it is in one segment, in bytes
/// of blocks: a scan of a segment costs about `segment / 1 MiB` GETs once
/// the window has grown, and holds at most this much of each segment.
pub const READ_AHEAD_BYTES_MAX: u64 = 1 << 20;

/// A walker's place in one segment (`SegmentReader::range_step`): blocks
/// fetched ahead and not yet passed, and how many to fetch next. The
/// window starts at one block and doubles with each fetch, so a scan that
/// stops early (a limit, a prefix) reads little more than it uses, and a
/// long one reads `READ_AHEAD_BYTES_MAX` at a time. It never reads a block
/// that starts past `limit` (the walk's end).
///
/// Once a walk has fetched `PREFETCH_AFTER_FETCHES` times it is a long
/// one: when it reaches the middle of what it holds, the next fetch
/// starts in a task of its own, so that reading and decoding the next
/// blocks overlaps the walker's use of these (a second core's work). A
/// walk that stops early (a limit, a dropped stream) wastes at most that
/// one fetch per segment, and only after reading seven blocks; a short
/// walk costs no extra request. At most one fetch is in flight per
/// segment, and it is aborted when the walk is dropped.
#[derive(Debug)]
pub struct ReadAhead {
    blocks: VecDeque<(usize, Arc<Block>)>,
    window: usize,
    limit: Bound<String>,
    /// Fetches made so far.
    fetches: usize,
    /// The block whose use starts the next fetch, on a long walk.
    prefetch_at: Option<usize>,
    /// The fetch in flight, if any: its first block and its task.
    prefetch: Option<(usize, Prefetch)>,
}

/// A fetch in a task of its own, aborted if dropped unfinished (a walk
/// dropped while it waits for it, or one that ended before using it).
#[derive(Debug)]
struct Prefetch(tokio::task::JoinHandle<Result<Vec<Arc<Block>>>>);

impl Future for Prefetch {
    type Output = std::result::Result<Result<Vec<Arc<Block>>>, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetches a walk makes before it fetches ahead of its use (1, 2 and 4
/// blocks: about 224 KiB of 32 KiB blocks).
const PREFETCH_AFTER_FETCHES: usize = 3;

impl ReadAhead {
    /// Reading ahead no further than `limit` (the walk's upper bound).
    pub fn new(limit: Bound<String>) -> ReadAhead {
        ReadAhead {
            blocks: VecDeque::new(),
            window: 1,
            limit,
            fetches: 0,
            prefetch_at: None,
            prefetch: None,
        }
    }

    /// The fetch started for block `n`, if one was. One started for
    /// another block is abandoned (aborted as it drops).
    fn take_prefetched(&mut self, n: usize) -> Option<Prefetch> {
        self.prefetch
            .take()
            .filter(|(first, _)| *first == n)
            .map(|(_, task)| task)
    }

    /// The walker passed block `n`: on a long walk at the middle of what
    /// is held, starts fetching the blocks after it (within the limit) in
    /// a task.
    fn maybe_prefetch(&mut self, segment: &Arc<SegmentReader>, n: usize) {
        if self.prefetch_at != Some(n) {
            return;
        }
        self.prefetch_at = None;
        let Some(next) = self.blocks.back().map(|(last, _)| last + 1) else {
            return;
        };
        if next >= segment.index.blocks().len()
            || !before_to(
                segment.block_first_bound(next),
                crate::steps::as_str(&self.limit),
            )
        {
            return;
        }
        // Outside a runtime (no task can run), the walk fetches as it goes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let count = self.window(segment, next);
        let segment = Arc::clone(segment);
        let task = runtime.spawn(async move { segment.blocks(next, count).await });
        self.prefetch = Some((next, Prefetch(task)));
    }

    /// Block `n` if held; blocks before `n` are dropped (walks only go
    /// forward).
    fn get(&mut self, n: usize) -> Option<Arc<Block>> {
        while self.blocks.front().is_some_and(|(m, _)| *m < n) {
            self.blocks.pop_front();
        }
        match self.blocks.front() {
            Some((m, b)) if *m == n => Some(Arc::clone(b)),
            _ => None,
        }
    }

    /// How many blocks from `n` the next fetch takes: the window, cut at
    /// `READ_AHEAD_BYTES_MAX` and at the first block past the limit (at
    /// least one).
    fn window(&mut self, segment: &SegmentReader, n: usize) -> usize {
        let limit = crate::steps::as_str(&self.limit);
        let handles = segment.index.blocks();
        let mut count = 1;
        let mut bytes = handles.get(n).map_or(0, |h| u64::from(h.len));
        while count < self.window {
            let Some(h) = handles.get(n + count) else {
                break;
            };
            if bytes + u64::from(h.len) > READ_AHEAD_BYTES_MAX
                || !before_to(segment.block_first_bound(n + count), limit)
            {
                break;
            }
            bytes += u64::from(h.len);
            count += 1;
        }
        self.window = self.window.saturating_mul(2).min(1 << 16);
        count
    }

    fn refill(&mut self, first: usize, blocks: Vec<Arc<Block>>) {
        self.fetches += 1;
        self.prefetch_at =
            (self.fetches >= PREFETCH_AFTER_FETCHES).then(|| first + blocks.len() / 2);
        self.blocks.clear();
        self.blocks
            .extend(blocks.into_iter().enumerate().map(|(i, b)| (first + i, b)));
    }
}
