//! Scans as streams, in bounded memory.
//!
//! A scan walks its range in steps. Each step ends at the smallest of the
//! last ids of the blocks the segments would fetch next, and after at most
//! `MEMTABLE_IDS_PER_STEP` memtable ids; it reads only entries up to there,
//! merges them with `MergeIter::visible` and keeps the visible entries
//! for the next batch before the next step starts after that id. A step
//! whose entries all come from one segment (no memtable id, no other
//! segment's entry in it: the common case once compaction has left
//! non-overlapping level-1 segments) needs no merge: the same rule runs
//! over the segment's blocks as they are, and the batch keeps each
//! visible entry in its block (`batch.rs`).
//!
//! Invariants:
//! - A step holds a few runs of blocks per segment, each at most
//!   `READ_AHEAD_BYTES_MAX` (1 MiB; see `reef_manifest::steps`: what
//!   `range_step` read ahead, starting at one block and doubling per fetch,
//!   never past the range's end, and on a long walk the next run), and
//!   `MEMTABLE_IDS_PER_STEP` memtable ids with their versions. A batch
//!   (`next_batch`) gathers steps up to `BATCH_ENTRIES_MAX` entries,
//!   `BATCH_BYTES_MAX` bytes or `BATCH_STEPS_MAX` steps, and its entries
//!   point into the blocks those steps read; a stream has at most three
//!   batches alive (`stream.rs`). Memory is bounded by these settings,
//!   the view's segment count and block size, never by the range.
//! - Every version of an id lies within one step (a step ends *at* an id,
//!   inclusive, and the next starts strictly after it), so the merge sees
//!   all of an id's versions together and picks the same one a whole-range
//!   merge would.
//! - Every step ends strictly after the previous one: each candidate end is
//!   the last id of a block that starts after the previous end, or a
//!   memtable id after it.
//! - The scan reads one view: every document is as of `view.at`.
//!
//! A stream (`stream.rs`) on a multi-threaded runtime reads these steps
//! on a task of its own, in batches, while its consumer decodes the
//! documents; elsewhere it reads them in line.

mod batch;
mod stream;

use std::ops::Bound;

pub use stream::DocStream;
pub(crate) use stream::stream;

use reef_format::segment::before_to;
use reef_format::{Entry, FormatError, MergeIter, Tombstones};
use reef_manifest::BlockSlice;
use reef_manifest::steps::{RangeSteps, as_str};

use batch::Batch;

use crate::error::{Error, Result};
use crate::namespace::View;
use crate::read::{Doc, ScanRange, to_doc};
use crate::sync::read_lock;

/// Memtable ids one step takes at most.
const MEMTABLE_IDS_PER_STEP: usize = 1024;

/// Entries a batch gathers from consecutive steps, at most, before it is
/// handed on (a batch ends sooner at `BATCH_BYTES_MAX` or
/// `BATCH_STEPS_MAX`). Where segments overlap, a step ends at the first
/// block end of any of them and holds a few dozen entries; handing each
/// step on its own (a cross-thread wake per step) made an 8-way merge 18%
/// slower than reading in line. The first batch is one step, and each
/// next one may hold twice as many entries up to this, so the first
/// documents come as soon as before and a scan given up early has read
/// little ahead.
///
/// Each hand-off may have to wake the other side, parked while it
/// waited, and that wake-up lies on the scan's critical path. At 1,024
/// a full scan of 100-byte documents handed on about a thousand batches
/// per million documents, and its consumer was busy 63–85% of the time
/// (about 71% on average; first scans on 2 cores); at 8,192 it is about
/// 120 batches and the consumer is busy about 77%. Such a batch holds
/// about 1 MiB of ids and documents (near `BATCH_BYTES_MAX`, where
/// larger documents end theirs) and 8,192 entries' slots, about 0.6 MiB.
const BATCH_ENTRIES_MAX: usize = 8192;

/// Bytes of ids and documents after which a batch ends: with large
/// documents, a batch is a few of them, not thousands.
const BATCH_BYTES_MAX: usize = 1 << 20;

/// Steps after which a batch ends, however few entries they gave: the
/// entries point into the blocks their steps read, so in a range that is
/// mostly tombstones a batch would otherwise hold the blocks of many
/// steps for a handful of documents.
const BATCH_STEPS_MAX: usize = 64;

/// The state of one scan.
pub(crate) struct Scanner {
    view: View,
    namespace: String,
    prefix: Option<String>,
    /// The range's end.
    upper: Bound<String>,
    /// Documents still wanted (`limit`).
    wanted: usize,
    /// The segments' side of the walk (and where the next step starts).
    steps: RangeSteps,
    /// Visible entries (each with a document) merged but not handed out.
    ready: Batch,
    /// Entries the next batch may gather (doubling up to
    /// `BATCH_ENTRIES_MAX`).
    batch_entries: usize,
    /// A step failed after the batch had gathered entries: they go out
    /// first, the error with the next batch.
    failed: Option<Error>,
    /// No step is left: what is in `ready` is the rest.
    finished: bool,
}

impl Scanner {
    pub(crate) fn new(view: View, namespace: &str, range: &ScanRange) -> Scanner {
        // The effective lower bound is the later of `from` and `prefix`.
        let lower = match (&range.from, &range.prefix) {
            (Some(f), Some(p)) => Some(if f >= p { f } else { p }),
            (Some(f), None) => Some(f),
            (None, Some(p)) => Some(p),
            (None, None) => None,
        };
        // A segment whose every entry is newer than the view has nothing
        // the view can see.
        let visible = view
            .segments
            .iter()
            .filter(|s| s.footer().min_version <= view.at)
            .cloned()
            .collect::<Vec<_>>();
        let lower = lower.map_or(Bound::Unbounded, |l| Bound::Included(l.clone()));
        let wanted = range.limit.unwrap_or(usize::MAX);
        // The effective upper bound is the earlier of `to` and the first id
        // past every id under `prefix`, so no step (and no read-ahead)
        // goes past the prefix's ids.
        let upper = match (&range.to, range.prefix.as_deref().and_then(prefix_end)) {
            (Some(t), Some(p)) => Bound::Excluded(if *t <= p { t.clone() } else { p }),
            (Some(t), None) => Bound::Excluded(t.clone()),
            (None, Some(p)) => Bound::Excluded(p),
            (None, None) => Bound::Unbounded,
        };
        Scanner {
            namespace: namespace.to_owned(),
            prefix: range.prefix.clone(),
            wanted,
            steps: RangeSteps::new(visible, lower, upper.clone()),
            upper,
            ready: Batch::default(),
            batch_entries: 1,
            failed: None,
            finished: wanted == 0,
            view,
        }
    }

    /// The next document of the scan, or `None` at its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Doc>> {
        loop {
            if let Some(e) = self.ready.pop(&self.namespace) {
                match to_doc(e?, &self.namespace)? {
                    Some(doc) => return Ok(Some(doc)),
                    None => continue,
                }
            }
            if self.finished {
                return Ok(None);
            }
            self.step().await?;
        }
    }

    /// The visible entries of the next steps, in id order (see
    /// `BATCH_ENTRIES_MAX` for how many), or `None` at the scan's end.
    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let (mut bytes, mut steps) = (0, 0);
        loop {
            let full = self.ready.len() >= self.batch_entries
                || bytes >= BATCH_BYTES_MAX
                || steps >= BATCH_STEPS_MAX;
            if !self.ready.is_empty() && (full || self.finished) {
                self.batch_entries = (self.batch_entries * 2).min(BATCH_ENTRIES_MAX);
                // The next batch goes into a deque of this one's size:
                // grown from empty, it was reallocated ~8 times a step.
                let capacity = self.ready.len();
                return Ok(Some(std::mem::replace(
                    &mut self.ready,
                    Batch::with_capacity(capacity),
                )));
            }
            if self.finished {
                return Ok(None);
            }
            match self.step().await {
                Ok(added) => {
                    bytes += added;
                    steps += 1;
                }
                Err(e) if self.ready.is_empty() => return Err(e),
                Err(e) => {
                    // What was gathered is good: hand it out first.
                    self.failed = Some(e);
                    return Ok(Some(std::mem::take(&mut self.ready)));
                }
            }
        }
    }

    /// Reads and merges one step of the range into `ready`; the bytes of
    /// ids and documents it added.
    async fn step(&mut self) -> Result<usize> {
        let upper = as_str(&self.upper);
        // The step ends where some segment would need another block...
        let mut step_end = match self.steps.next_end() {
            Some(id) if before_to(&id, upper) => Bound::Included(id),
            _ => self.upper.clone(),
        };
        // ...or sooner, after `MEMTABLE_IDS_PER_STEP` memtable ids.
        let (mem, mem_stopped_at) = read_lock(&self.view.memtable).range_ids(
            self.steps.lower(),
            as_str(&step_end),
            MEMTABLE_IDS_PER_STEP,
        );
        if let Some(id) = mem_stopped_at {
            step_end = Bound::Included(id);
        }
        self.finished = step_end == self.upper;
        let mut segment_runs = self.steps.read_slices(as_str(&step_end)).await?;
        segment_runs.retain(|run| !run.is_empty());
        if mem.is_empty() && segment_runs.len() <= 1 {
            let run = segment_runs.pop().unwrap_or_default();
            return Ok(self.take_one_run(&run));
        }
        let mut runs = Vec::with_capacity(segment_runs.len() + 1);
        runs.push(mem);
        runs.extend(segment_runs.iter().map(|run| BlockSlice::run_entries(run)));
        // Each run as it is: wrapping entries in `Ok` lazily, not into a
        // second vector per run and step.
        let ok: fn(Entry) -> std::result::Result<Entry, FormatError> = Ok;
        let runs: Vec<_> = runs
            .into_iter()
            .map(|run| run.into_iter().map(ok))
            .collect();
        let mut added = 0;
        for e in MergeIter::visible(runs, self.view.at, Tombstones::Hide) {
            let e = e?;
            // Hidden tombstones aside, every visible entry has a document;
            // decoding it is the consumer's part (`to_doc`).
            if e.doc().is_none() {
                continue;
            }
            match self.in_prefix(&e.id) {
                None => {
                    self.finished = true;
                    break;
                }
                Some(false) => continue,
                Some(true) => {}
            }
            added += e.payload_bytes();
            self.ready.push(e);
            if self.took_one() {
                break;
            }
        }
        Ok(added)
    }

    /// One segment's entries alone (the memtable and every other segment
    /// have none in this step): `MergeIter::visible`'s rule applied to the
    /// run as it is, each visible entry left in its block. The slices are
    /// consecutive blocks of one segment, each checked against the
    /// segment's index when it was decoded, so the run is in segment
    /// order (ids ascending, each id's versions newest first), and there
    /// is nothing to merge: per id, the first version at or below the
    /// view's is the visible one. The bytes of ids and documents added.
    fn take_one_run(&mut self, slices: &[BlockSlice]) -> usize {
        let mut added = 0;
        // The last id whose visible version was met: its older ones go.
        let mut decided: Option<&str> = None;
        'run: for s in slices {
            let block = &s.block;
            for i in s.entries.clone() {
                let id = block.id(i);
                if decided == Some(id) || block.version(i) > self.view.at {
                    continue;
                }
                decided = Some(id);
                // A visible tombstone hides the id.
                if !block.is_put(i) {
                    continue;
                }
                match self.in_prefix(id) {
                    None => {
                        self.finished = true;
                        break 'run;
                    }
                    Some(false) => continue,
                    Some(true) => {}
                }
                added += block.payload_bytes(i);
                self.ready.push_in_block(block, i);
                if self.took_one() {
                    break 'run;
                }
            }
        }
        added
    }

    /// Whether a visible id is in the scan's prefix: `Some(false)` before
    /// it (skip the id), `None` past every id under it (the scan is over).
    fn in_prefix(&self, id: &str) -> Option<bool> {
        match &self.prefix {
            Some(p) if !id.starts_with(p.as_str()) => (id < p.as_str()).then_some(false),
            _ => Some(true),
        }
    }

    /// Counts a document taken; `true` (and the scan finished) once the
    /// limit is reached.
    fn took_one(&mut self) -> bool {
        self.wanted -= 1;
        if self.wanted == 0 {
            self.finished = true;
        }
        self.wanted == 0
    }
}

/// The whole scan in a `Vec`.
pub(crate) async fn collect(view: View, namespace: &str, range: &ScanRange) -> Result<Vec<Doc>> {
    let mut scanner = Scanner::new(view, namespace, range);
    let mut out = Vec::new();
    while let Some(doc) = scanner.next().await? {
        out.push(doc);
    }
    Ok(out)
}

/// The least id greater than every id that starts with `prefix` (its last
/// character that has a successor, raised by one, and cut there), or
/// `None` when there is none (empty, or all `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = (u32::from(c) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use futures_util::TryStreamExt;

    use super::*;
    use reef_format::segment::SegmentOptions;
    use reef_format::{SegmentBuilder, Value, encode_document};
    use reef_manifest::BlockCache;
    use reef_manifest::SegmentReader;
    use reef_manifest::store::{CountingStore, DynStore, MemoryStore, ObjectStore};

    use crate::memtable::Memtable;
    use crate::sync::RwLock;

    pub(super) fn doc(n: i64) -> bytes::Bytes {
        let d = Document::from_iter([
            ("n".to_owned(), Value::I64(n)),
            ("pad".to_owned(), Value::String("p".repeat(60))),
        ]);
        encode_document(&d, &reef_format::Limits::default())
            .unwrap_or_default()
            .into()
    }

    use reef_format::Document;

    /// One segment: "a", then 300 versions of "m" filling several small
    /// blocks (the builder splits blocks inside an id), then "z"; a view at
    /// `at`, with `mem` in its memtable.
    async fn view(at: u64, mem: &[Entry]) -> View {
        view_on(Arc::new(MemoryStore::new()), at, mem).await
    }

    async fn view_on(store: DynStore, at: u64, mem: &[Entry]) -> View {
        let mut b = SegmentBuilder::new(SegmentOptions {
            block_bytes_target: 4096,
            ..SegmentOptions::default()
        });
        b.add(&Entry::put("a", 1, doc(1))).unwrap();
        for v in (2..302).rev() {
            b.add(&Entry::put("m", v, doc(v as i64))).unwrap();
        }
        b.add(&Entry::put("z", 302, doc(302))).unwrap();
        let built = b.finish().unwrap();
        store.put("seg", built.bytes.clone()).await.unwrap();
        let cache = Arc::new(BlockCache::new(1 << 20));
        let seg = SegmentReader::open(store, "seg", Some(built.bytes.len() as u64), cache)
            .await
            .unwrap();
        assert!(
            seg.first_block(Bound::Excluded("m")) >= 3,
            "m must span blocks"
        );
        let mut table = Memtable::default();
        for e in mem {
            table.insert(e.clone());
        }
        View {
            manifest_version: 1,
            segments: Arc::new(vec![Arc::new(seg)]),
            memtable: Arc::new(RwLock::new(table)),
            at,
        }
    }

    async fn scan(view: View) -> Vec<(String, u64)> {
        collect(view, "t", &ScanRange::default())
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.id, d.version))
            .collect()
    }

    /// Every version of an id is merged in one step, however many blocks
    /// it fills: the newest visible one is returned, once.
    #[tokio::test]
    async fn an_id_spanning_blocks_is_read_once_at_its_visible_version() {
        let s = |id: &str, v| (id.to_owned(), v);
        assert_eq!(
            scan(view(u64::MAX, &[]).await).await,
            [s("a", 1), s("m", 301), s("z", 302)]
        );
        assert_eq!(scan(view(150, &[]).await).await, [s("a", 1), s("m", 150)]);
        // A newer memtable version of "m" wins; a memtable tombstone of
        // "a" hides it.
        let mem = [Entry::put("m", 400, doc(400)), Entry::delete("a", 401)];
        assert_eq!(
            scan(view(u64::MAX, &mem).await).await,
            [s("m", 400), s("z", 302)]
        );
    }

    /// A prefix scan stops at the prefix's end: here "a" lives in block 0,
    /// and the blocks of "m" after it are never fetched.
    #[tokio::test]
    async fn a_prefix_scan_reads_no_block_past_the_prefix() {
        let counting = Arc::new(CountingStore::new(MemoryStore::new()));
        let view = view_on(counting.clone(), u64::MAX, &[]).await;
        let before = counting.counts();
        let range = ScanRange {
            prefix: Some("a".to_owned()),
            ..ScanRange::default()
        };
        let docs = collect(view, "t", &range).await.unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(counting.counts().since(&before).get_range, 1);
    }

    #[test]
    fn the_prefix_end_is_the_least_id_past_the_prefix() {
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end("user/").as_deref(), Some("user0"));
        let max = char::MAX.to_string();
        assert_eq!(prefix_end(&format!("a{max}")).as_deref(), Some("b"));
        assert_eq!(prefix_end(&max), None);
        assert_eq!(prefix_end(""), None);
        // Surrogates are not chars: the successor of U+D7FF is U+E000.
        assert_eq!(prefix_end("\u{d7ff}").as_deref(), Some("\u{e000}"));
    }

    /// Read-ahead stops at the prefix's end too: a prefix whose ids fill
    /// a few blocks, followed by many blocks of other ids, fetches about
    /// the prefix's blocks, not a grown read-ahead window past them.
    #[tokio::test]
    async fn a_prefix_scan_reads_ahead_no_further_than_the_prefix() {
        let store = Arc::new(CountingStore::new(MemoryStore::new()));
        let mut b = SegmentBuilder::new(SegmentOptions {
            block_bytes_target: 4096,
            ..SegmentOptions::default()
        });
        let ids = (0..2_000).map(|n| format!("{}{n:04}", if n < 300 { 'a' } else { 'b' }));
        for (v, id) in ids.enumerate() {
            b.add(&Entry::put(id, v as u64 + 1, doc(v as i64))).unwrap();
        }
        let built = b.finish().unwrap();
        store.put("seg", built.bytes.clone()).await.unwrap();
        let cache = Arc::new(BlockCache::new(16 << 20));
        let len = built.bytes.len() as u64;
        let seg = SegmentReader::open(store.clone(), "seg", Some(len), cache)
            .await
            .unwrap();
        let blocks_of_a = seg.first_block(Bound::Excluded("a0299")) as u64 + 1;
        let blocks = seg.first_block(Bound::Excluded("b1999")) as u64 + 1;
        let view = View {
            manifest_version: 1,
            segments: Arc::new(vec![Arc::new(seg)]),
            memtable: Arc::new(RwLock::new(Memtable::default())),
            at: u64::MAX,
        };
        let before = store.counts();
        let range = ScanRange {
            prefix: Some("a".to_owned()),
            ..ScanRange::default()
        };
        assert_eq!(collect(view, "t", &range).await.unwrap().len(), 300);
        let read = store.counts().since(&before).bytes_read;
        // The blocks holding "a" ids, and the next: the walk's end is in it.
        let allowed = (blocks_of_a + 1) * len / blocks;
        assert!(
            read <= allowed,
            "read {read} bytes for {blocks_of_a} of {blocks} blocks holding \"a\" ids (allowed {allowed})"
        );
    }

    /// A segment of 4,000 documents `k00000`..`k03999` in blocks of about
    /// 3.3 KiB (35 entries), read through `cache`; and its counted store.
    async fn k_segment(
        cache: Arc<BlockCache>,
    ) -> (Arc<CountingStore<MemoryStore>>, Arc<SegmentReader>) {
        k_segment_of(4_000, cache).await
    }

    /// `k_segment` with `docs` documents (at most 100,000).
    pub(super) async fn k_segment_of(
        docs: u64,
        cache: Arc<BlockCache>,
    ) -> (Arc<CountingStore<MemoryStore>>, Arc<SegmentReader>) {
        let store = Arc::new(CountingStore::new(MemoryStore::new()));
        let seg = k_segment_on(store.clone(), docs, cache).await;
        (store, seg)
    }

    /// `k_segment_of`, put into and read from `store`.
    pub(super) async fn k_segment_on(
        store: DynStore,
        docs: u64,
        cache: Arc<BlockCache>,
    ) -> Arc<SegmentReader> {
        let mut b = SegmentBuilder::new(SegmentOptions {
            block_bytes_target: 4096,
            ..SegmentOptions::default()
        });
        for n in 0..docs {
            b.add(&Entry::put(format!("k{n:05}"), n + 1, doc(n as i64)))
                .unwrap();
        }
        let built = b.finish().unwrap();
        store.put("seg", built.bytes.clone()).await.unwrap();
        let len = built.bytes.len() as u64;
        let seg = SegmentReader::open(store, "seg", Some(len), cache)
            .await
            .unwrap();
        Arc::new(seg)
    }

    /// A view of `seg` alone, at its newest.
    pub(super) fn view_of(seg: &Arc<SegmentReader>) -> View {
        View {
            manifest_version: 1,
            segments: Arc::new(vec![Arc::clone(seg)]),
            memtable: Arc::new(RwLock::new(Memtable::default())),
            at: u64::MAX,
        }
    }

    /// A long scan leaves the block cache to point reads: its read-ahead
    /// runs are not cached, so a block a point read cached survives a scan
    /// of many times the cache's size, and reading it again costs no GET.
    #[tokio::test]
    async fn a_long_scan_does_not_evict_point_reads_blocks() {
        // Room for four of its blocks (about 3.3 KiB and 35 slots each),
        // not five; the segment has over a hundred.
        let block = 3_400 + 35 * reef_format::segment::SLOT_BYTES;
        let cache = Arc::new(BlockCache::new(4 * block));
        let (store, seg) = k_segment(cache.clone()).await;
        assert!(seg.first_block(Bound::Excluded("k03999")) > 100);
        let view = view_of(&seg);
        // Point reads cache three blocks spread over the segment, so the
        // scan's read-ahead is cut into runs around them, some of them
        // single blocks.
        let hot = ["k00130", "k01000", "k02000", "k03999"];
        for id in hot {
            assert!(crate::read::get(&view, "t", id).await.unwrap().is_some());
        }
        assert_eq!(cache.stats().blocks, 4);
        assert!(!cache.has_room(block - 400), "{cache:?}");
        let docs = collect(view.clone(), "t", &ScanRange::default())
            .await
            .unwrap();
        assert_eq!(docs.len(), 4_000);
        let before = store.counts();
        for id in hot {
            assert!(crate::read::get(&view, "t", id).await.unwrap().is_some());
        }
        assert_eq!(
            store.counts().since(&before).get_range,
            0,
            "the scan evicted a point read's block"
        );
    }

    /// A walk that stops early (a limit) fetches nothing it does not use,
    /// even when its consumer yields and a prefetch task could run: only
    /// a long walk fetches ahead, from the middle of its fourth fetch on.
    #[tokio::test]
    async fn a_short_walk_fetches_nothing_ahead() {
        let (store, seg) = k_segment(Arc::new(BlockCache::new(0))).await;
        // The number of entries before block `b`.
        let before_block = |b: usize| {
            (0..4_000)
                .find(|n| seg.first_block(Bound::Included(&format!("k{n:05}"))) >= b)
                .unwrap()
        };
        // Fetches take blocks 0, then 1-2, then 3-6: a walk ending in
        // block 1 needs two, one ending in block 4 three.
        let shapes = [(before_block(1) + 1, 2), (before_block(4) + 1, 3)];
        for (limit, gets) in shapes {
            let view = view_of(&seg);
            let before = store.counts();
            let range = ScanRange {
                limit: Some(limit),
                ..ScanRange::default()
            };
            let mut docs = stream(Scanner::new(view, "t", &range), ());
            let mut n = 0;
            while docs.try_next().await.unwrap().is_some() {
                n += 1;
                tokio::task::yield_now().await;
            }
            drop(docs);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(n, limit);
            assert_eq!(
                store.counts().since(&before).get_range,
                gets,
                "a scan of {limit} documents"
            );
        }
    }

    /// The sizes of a walk's batches, in order.
    async fn batch_sizes(view: View) -> Vec<usize> {
        let mut scanner = Scanner::new(view, "t", &ScanRange::default());
        let mut sizes = Vec::new();
        while let Some(batch) = scanner.next_batch().await.unwrap() {
            sizes.push(batch.len());
        }
        sizes
    }

    /// A view of one segment built from `entries` in blocks of about
    /// `block_bytes`, and its number of blocks.
    async fn view_of_entries(
        entries: impl IntoIterator<Item = Entry>,
        block_bytes: usize,
    ) -> (View, usize) {
        let store: DynStore = Arc::new(MemoryStore::new());
        let mut b = SegmentBuilder::new(SegmentOptions {
            block_bytes_target: block_bytes,
            ..SegmentOptions::default()
        });
        let mut last = String::new();
        for e in entries {
            b.add(&e).unwrap();
            last.clone_from(&e.id);
        }
        let built = b.finish().unwrap();
        store.put("seg", built.bytes.clone()).await.unwrap();
        let len = Some(built.bytes.len() as u64);
        let cache = Arc::new(BlockCache::new(0));
        let seg = SegmentReader::open(store, "seg", len, cache).await.unwrap();
        // No block's last id is past the segment's last: all of them.
        let blocks = seg.first_block(Bound::Excluded(&last));
        (view_of(&Arc::new(seg)), blocks)
    }

    /// Batches start at one step (the first documents come as soon as a
    /// step is merged) and grow by doubling to `BATCH_ENTRIES_MAX`
    /// entries, plus at most a step's.
    #[tokio::test]
    async fn batches_start_at_one_step_and_grow_to_their_cap() {
        let entries = (0..40_000u64).map(|n| Entry::put(format!("k{n:05}"), n + 1, doc(n as i64)));
        // Blocks of the default size: a step is one block of a few hundred
        // entries, so `BATCH_STEPS_MAX` steps hold more than the cap.
        let (view, blocks) =
            view_of_entries(entries, SegmentOptions::default().block_bytes_target).await;
        let mean_step = 40_000 / blocks;
        assert!(
            BATCH_STEPS_MAX * mean_step > BATCH_ENTRIES_MAX,
            "{mean_step}"
        );
        // One step is at most twice the mean (the last block is short).
        let per_step = 2 * mean_step;
        let mut scanner = Scanner::new(view, "t", &ScanRange::default());
        let (mut sizes, mut most_bytes) = (Vec::new(), 0);
        while let Some(batch) = scanner.next_batch().await.unwrap() {
            sizes.push(batch.len());
            most_bytes = most_bytes.max(batch.payload_bytes());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 40_000);
        assert!(sizes[0] <= per_step, "{sizes:?}");
        // The threshold doubles from one: batch `i` ends at the step that
        // reaches `2^i` entries (or the cap).
        for (i, &n) in sizes.iter().enumerate() {
            let threshold = (1usize << i.min(20)).min(BATCH_ENTRIES_MAX);
            assert!(n < threshold + per_step, "batch {i}: {sizes:?}");
        }
        let max = *sizes.iter().max().unwrap();
        assert!(
            (BATCH_ENTRIES_MAX..BATCH_ENTRIES_MAX + per_step).contains(&max),
            "{sizes:?}"
        );
        // The entries cap is what binds here, not the bytes cap.
        assert!(most_bytes < BATCH_BYTES_MAX, "{most_bytes}");
    }

    /// With large documents a batch ends at `BATCH_BYTES_MAX`, not at
    /// `BATCH_ENTRIES_MAX` documents.
    #[tokio::test]
    async fn a_batch_of_large_documents_ends_at_its_byte_cap() {
        let big = |n: u64| {
            let d = Document::from_iter([("pad".to_owned(), Value::String("p".repeat(100_000)))]);
            let bytes = encode_document(&d, &reef_format::Limits::default()).unwrap();
            Entry::put(format!("k{n:05}"), n + 1, bytes::Bytes::from(bytes))
        };
        let sizes = batch_sizes(view_of_entries((0..120).map(big), 4096).await.0).await;
        assert_eq!(sizes.iter().sum::<usize>(), 120);
        // 1 MiB is 10.5 documents: a batch ends at the one that passes it.
        assert!(sizes.iter().all(|&n| n <= 11), "{sizes:?}");
    }

    /// Where most entries are tombstones, a batch ends after
    /// `BATCH_STEPS_MAX` steps, however few documents they gave, so it
    /// does not hold the blocks of hundreds of steps.
    #[tokio::test]
    async fn a_batch_over_tombstones_ends_at_its_step_cap() {
        // One document per 1,000 ids, the rest tombstones.
        let entries = (0..200_000u64).map(|n| {
            let id = format!("k{n:06}");
            if n % 1_000 == 0 {
                Entry::put(id, n + 1, doc(n as i64))
            } else {
                Entry::delete(id, n + 1)
            }
        });
        let (view, blocks) = view_of_entries(entries, 4096).await;
        let sizes = batch_sizes(view).await;
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        // A step here is one block: the documents of `BATCH_STEPS_MAX`
        // blocks, and one more where a block boundary cuts the count.
        let ids_per_block = 200_000 / blocks;
        let most = BATCH_STEPS_MAX * ids_per_block / 1_000 + 1;
        // Batches grow to hundreds of entries here without the cap.
        assert!(most < 32, "the step cap does not bind here: {most}");
        assert!(
            sizes.iter().all(|&n| n <= most),
            "batches of at most {most} documents: {sizes:?}"
        );
    }

    /// A step that fails after a batch has gathered entries hands those
    /// out first and the error next: batches deliver every document that
    /// reading step by step does before the error, not only those of
    /// earlier batches.
    #[tokio::test]
    async fn a_failed_step_hands_out_what_the_batch_had_gathered() {
        let (store, seg) = k_segment_of(4_000, Arc::new(BlockCache::new(0))).await;
        // Damage a byte in the middle of the blocks (the reader has its
        // index already).
        let mut bytes = store.get("seg").await.unwrap().unwrap().bytes.to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 0xff;
        store.put("seg", bytes.into()).await.unwrap();
        let range = ScanRange::default();
        let mut by_step = 0;
        let mut scanner = Scanner::new(view_of(&seg), "t", &range);
        while scanner.next().await.is_ok_and(|d| d.is_some()) {
            by_step += 1;
        }
        let mut by_batch = 0;
        let mut scanner = Scanner::new(view_of(&seg), "t", &range);
        let failure = loop {
            match scanner.next_batch().await {
                Ok(Some(batch)) => by_batch += batch.len(),
                Ok(None) => panic!("the damaged block went unnoticed"),
                Err(e) => break e,
            }
        };
        assert!(by_step > 0 && by_step < 4_000, "{by_step}");
        assert_eq!(by_batch, by_step, "before {failure}");
    }

    /// A step over one segment alone skips the merge. It shows what
    /// `MergeIter::visible` over the same entries shows, at every
    /// snapshot, with prefixes and limits, through `collect` and the
    /// stream, on one segment and on two that do not overlap, and leaves
    /// the entries in their blocks.
    #[tokio::test]
    async fn one_segment_alone_shows_what_the_merge_shows() {
        // Ids of one to four versions, newest first, some of them
        // tombstones; each id's versions lie in its own band of ten, so
        // snapshots fall between versions of one id.
        let mut entries = Vec::new();
        for n in 0..600u64 {
            let id = format!("k{n:04}");
            for j in (0..=n % 4).rev() {
                let v = n * 10 + j + 1;
                entries.push(if (n + j) % 5 == 0 {
                    Entry::delete(id.clone(), v)
                } else {
                    Entry::put(id.clone(), v, doc(v as i64))
                });
            }
        }
        let (one, blocks) = view_of_entries(entries.clone(), 4096).await;
        assert!(blocks > 10, "{blocks}");
        // The same entries in two segments, split between two ids.
        let split = entries.partition_point(|e| e.id.as_str() < "k0300");
        let (low, _) = view_of_entries(entries[..split].to_vec(), 4096).await;
        let (high, _) = view_of_entries(entries[split..].to_vec(), 4096).await;
        let two = View {
            segments: Arc::new(
                low.segments
                    .iter()
                    .chain(high.segments.iter())
                    .cloned()
                    .collect(),
            ),
            ..one.clone()
        };
        // 11 and 1,232 leave an id's newest version above the snapshot and
        // an older document visible; 4,503 is an id's newest version.
        for at in [0, 11, 1_232, 1_233, 3_002, 4_502, 4_503, 5_999, u64::MAX] {
            for prefix in [None, Some("k00"), Some("k012"), Some("k05")] {
                for limit in [None, Some(7), Some(450)] {
                    let range = ScanRange {
                        prefix: prefix.map(str::to_owned),
                        limit,
                        ..ScanRange::default()
                    };
                    let runs = vec![entries.clone().into_iter().map(Ok::<Entry, FormatError>)];
                    let expected: Vec<(String, u64)> =
                        MergeIter::visible(runs, at, Tombstones::Hide)
                            .map(Result::unwrap)
                            .filter(|e| prefix.is_none_or(|p| e.id.starts_with(p)))
                            .take(limit.unwrap_or(usize::MAX))
                            .map(|e| (e.id, e.version))
                            .collect();
                    for view in [&one, &two] {
                        let at_view = View { at, ..view.clone() };
                        let got: Vec<(String, u64)> = collect(at_view.clone(), "t", &range)
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|d| (d.id, d.version))
                            .collect();
                        let what = format!("at {at}, prefix {prefix:?}, limit {limit:?}");
                        assert_eq!(got, expected, "{what}");
                        let streamed: Vec<(String, u64)> =
                            stream(Scanner::new(at_view, "t", &range), ())
                                .map_ok(|d| (d.id, d.version))
                                .try_collect()
                                .await
                                .unwrap();
                        assert_eq!(streamed, expected, "{what}, streamed");
                    }
                }
            }
        }
        for view in [one, two] {
            let mut scanner = Scanner::new(view, "t", &ScanRange::default());
            while let Some(batch) = scanner.next_batch().await.unwrap() {
                assert_eq!(batch.in_block(), batch.len(), "merged, not left in blocks");
            }
        }
    }
}
