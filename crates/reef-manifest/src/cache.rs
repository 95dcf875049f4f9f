//! `BlockCache`: decoded segment blocks, least-recently-used first out,
//! bounded by a byte budget, each block counted at what it holds in
//! memory (`Block::mem_bytes`: its bytes and its per-entry slots).
//!
//! Invariant: `used_bytes <= budget_bytes` after every call; a block larger
//! than the whole budget is never cached.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use reef_format::segment::Block;

/// Identifies a block: the segment's object key, a fingerprint of the
/// segment's identity (length and content digest: a key reused for other
/// bytes never hits stale blocks), and the block number.
pub type BlockKey = (Arc<str>, u64, usize);

/// Hit and miss counters and occupancy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Blocks held.
    pub blocks: usize,
    /// Bytes held.
    pub used_bytes: usize,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<BlockKey, (u64, Arc<Block>, usize)>,
    by_age: BTreeMap<u64, BlockKey>,
    tick: u64,
    stats: CacheStats,
}

/// A shared, bounded cache of decoded blocks.
pub struct BlockCache {
    budget_bytes: usize,
    lru: Mutex<Lru>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BlockCache({:?} of {} bytes)",
            self.stats(),
            self.budget_bytes
        )
    }
}

impl BlockCache {
    /// A cache holding at most `budget_bytes` of blocks.
    pub fn new(budget_bytes: usize) -> BlockCache {
        BlockCache {
            budget_bytes,
            lru: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // The LRU's maps stay consistent across a panic elsewhere (every
        // mutation completes before the guard drops), so poison is benign.
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block, if cached (and marks it recently used).
    pub fn get(&self, key: &BlockKey) -> Option<Arc<Block>> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let Some((age, block, _)) = lru.entries.get_mut(key) else {
            lru.stats.misses += 1;
            return None;
        };
        let (old, block) = (*age, Arc::clone(block));
        *age = tick;
        lru.by_age.remove(&old);
        lru.by_age.insert(tick, key.clone());
        lru.stats.hits += 1;
        Some(block)
    }

    /// Whether the block is cached (counts neither a hit nor a miss, and
    /// does not mark it used).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Whether a block of `bytes` fits beside what is cached, with no
    /// eviction (a walk's read-ahead fills free room only). Advisory: a
    /// concurrent insert between this and the caller's may still evict,
    /// at most about a block per concurrent walk.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.lock().stats.used_bytes.saturating_add(bytes) <= self.budget_bytes
    }

    /// Caches a block, charged what it holds in memory
    /// (`Block::mem_bytes`), evicting the least recently used blocks to
    /// stay within budget.
    pub fn insert(&self, key: BlockKey, block: Arc<Block>) {
        let bytes = block.mem_bytes();
        if bytes > self.budget_bytes {
            return;
        }
        let mut lru = self.lock();
        if let Some((age, _, old_bytes)) = lru.entries.remove(&key) {
            lru.by_age.remove(&age);
            lru.stats.used_bytes -= old_bytes;
        }
        while lru.stats.used_bytes + bytes > self.budget_bytes {
            let Some((_, victim)) = lru.by_age.pop_first() else {
                break;
            };
            if let Some((_, _, b)) = lru.entries.remove(&victim) {
                lru.stats.used_bytes -= b;
            }
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.by_age.insert(tick, key.clone());
        lru.entries.insert(key, (tick, block, bytes));
        lru.stats.used_bytes += bytes;
        lru.stats.blocks = lru.entries.len();
    }

    /// Counters now.
    pub fn stats(&self) -> CacheStats {
        let lru = self.lock();
        CacheStats {
            blocks: lru.entries.len(),
            ..lru.stats
        }
    }
}
