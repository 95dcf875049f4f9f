//! Ranged, cached segment reads: answers equal the in-memory reader's;
//! request counts are what the design promises (open = 2 ranged GETs, a
//! cached hit = 0, a bloom miss = 0); the cache stays within budget; a
//! damaged block is a typed error naming the object.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use reef_format::segment::SLOT_BYTES;
use reef_format::{Entry, Limits, Segment, SegmentBuilder, SegmentOptions, Value, encode_document};
use reef_manifest::store::{CountingStore, DynStore, MemoryStore, ObjectStore};
use reef_manifest::{BlockCache, Error, SegmentReader};

fn entries(n: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    for i in 0..n {
        let doc = [
            ("n".to_owned(), Value::I64(i as i64)),
            ("pad".to_owned(), Value::String("x".repeat(100))),
        ]
        .into();
        let bytes = Bytes::from(encode_document(&doc, &Limits::default()).unwrap());
        if i % 5 == 0 {
            // An older version too, for snapshot reads.
            out.push(Entry::put(format!("id/{i:05}"), 10_000 + i, bytes.clone()));
        }
        out.push(Entry::put(format!("id/{i:05}"), i + 1, bytes));
    }
    out
}

fn build(entries: &[Entry]) -> Bytes {
    let mut b = SegmentBuilder::new(SegmentOptions {
        block_bytes_target: 4096,
        bloom_bits_per_key: 10,
    });
    for e in entries {
        b.add(e).unwrap();
    }
    b.finish().unwrap().bytes
}

async fn setup(
    budget: usize,
) -> (
    Arc<CountingStore<MemoryStore>>,
    Segment,
    Arc<BlockCache>,
    u64,
) {
    let store = Arc::new(CountingStore::new(MemoryStore::new()));
    let bytes = build(&entries(2000));
    let len = bytes.len() as u64;
    store.put("seg/s", bytes.clone()).await.unwrap();
    (
        store,
        Segment::open(bytes, "seg/s").unwrap(),
        Arc::new(BlockCache::new(budget)),
        len,
    )
}

#[tokio::test]
async fn ranged_reads_equal_whole_object_reads() {
    let (store, whole, cache, len) = setup(1 << 30).await;
    let dyn_store: DynStore = store.clone();
    let reader = SegmentReader::open(dyn_store, "seg/s", Some(len), cache)
        .await
        .unwrap();
    assert_eq!(reader.footer(), whole.footer());
    for i in (0..2100).step_by(7) {
        let id = format!("id/{i:05}");
        for at in [u64::MAX, 5_000, 1] {
            assert_eq!(
                reader.get(&id, at).await.unwrap(),
                whole.get(&id, at).unwrap(),
                "{id}@{at}"
            );
        }
    }
    let got = reader
        .scan(
            Bound::Included("id/00100"),
            Bound::Excluded("id/00200"),
            usize::MAX,
        )
        .await
        .unwrap();
    let expected: Vec<Entry> = whole
        .range(Bound::Included("id/00100"), Bound::Excluded("id/00200"))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        reader
            .scan(Bound::Unbounded, Bound::Unbounded, 3)
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn request_counts_match_the_design() {
    let (store, _, cache, len) = setup(1 << 30).await;
    let dyn_store: DynStore = store.clone();
    let before = store.counts();
    let reader = SegmentReader::open(dyn_store.clone(), "seg/s", Some(len), Arc::clone(&cache))
        .await
        .unwrap();
    let opened = store.counts().since(&before);
    assert_eq!(
        (opened.get_range, opened.requests()),
        (2, 2),
        "tail, then index+bloom"
    );

    let c0 = store.counts();
    reader.get("id/00042", u64::MAX).await.unwrap().unwrap();
    assert_eq!(store.counts().since(&c0).get_range, 1, "one block fetched");
    let c1 = store.counts();
    reader.get("id/00042", u64::MAX).await.unwrap().unwrap();
    reader.get("id/00043", u64::MAX).await.unwrap().unwrap();
    assert_eq!(
        store.counts().since(&c1).requests(),
        0,
        "same block: served from cache"
    );
    assert!(cache.stats().hits >= 2);

    let c2 = store.counts();
    let mut misses_fetched = 0;
    for i in 0..200 {
        assert!(
            reader
                .get(&format!("nobody/{i}"), u64::MAX)
                .await
                .unwrap()
                .is_none()
        );
        misses_fetched = store.counts().since(&c2).get_range;
    }
    assert!(
        misses_fetched <= 10,
        "bloom filter spares most misses: {misses_fetched} fetches for 200"
    );

    // Without a known length the reader pays one HEAD.
    let c3 = store.counts();
    SegmentReader::open(dyn_store, "seg/s", None, cache)
        .await
        .unwrap();
    assert_eq!(store.counts().since(&c3).head, 1);
}

#[tokio::test]
async fn cache_respects_its_budget() {
    let (store, _, _, len) = setup(0).await;
    let cache = Arc::new(BlockCache::new(10_000));
    let dyn_store: DynStore = store.clone();
    let reader = SegmentReader::open(dyn_store, "seg/s", Some(len), Arc::clone(&cache))
        .await
        .unwrap();
    reader
        .scan(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .await
        .unwrap();
    let stats = cache.stats();
    assert!(stats.used_bytes <= 10_000, "{stats:?}");
    assert!(stats.blocks >= 1 && stats.blocks <= 3, "{stats:?}");
}

/// The cache charges each block what it holds in memory (its bytes and
/// its slots), whether a point read fetched it alone or a walk's
/// read-ahead fetched it in a run.
#[tokio::test]
async fn cache_charges_what_blocks_hold() {
    let (store, whole, _, len) = setup(0).await;
    let cache = Arc::new(BlockCache::new(1 << 30));
    let dyn_store: DynStore = store.clone();
    let reader = SegmentReader::open(dyn_store, "seg/s", Some(len), Arc::clone(&cache))
        .await
        .unwrap();
    let alone = reader.block(7).await.unwrap();
    let stats = cache.stats();
    assert_eq!((stats.blocks, stats.used_bytes), (1, alone.mem_bytes()));
    let h = &whole.index().blocks()[7];
    assert_eq!(alone.mem_bytes(), h.len as usize + alone.len() * SLOT_BYTES);

    let run = reader.blocks(0, 6).await.unwrap();
    assert_eq!(run.len(), 6);
    let held: usize = run.iter().map(|b| b.mem_bytes()).sum();
    let stats = cache.stats();
    assert_eq!(stats.blocks, 7, "{stats:?}");
    assert_eq!(stats.used_bytes, held + alone.mem_bytes(), "{stats:?}");
    for (n, b) in run.iter().enumerate() {
        let h = &whole.index().blocks()[n];
        assert_eq!(b.mem_bytes(), h.len as usize + b.len() * SLOT_BYTES);
    }
}

/// A walk's read-ahead fills the cache's free room by what blocks hold,
/// not by their encoded length, and copies out of its run only the blocks
/// it caches: a cached block must not keep a 1 MiB run alive, and one not
/// cached need not be copied.
#[tokio::test]
async fn read_ahead_caches_by_held_size_and_copies_only_what_it_keeps() {
    let (store, whole, _, len) = setup(0).await;
    let h = whole.index().blocks();
    let held = |n: usize| h[n].len as usize + h[n].entries as usize * SLOT_BYTES;
    // Three blocks by encoded length, only two by what they hold.
    let budget: usize = (0..3).map(|n| h[n].len as usize).sum();
    assert!(held(0) + held(1) <= budget && held(0) + held(1) + held(2) > budget);
    let cache = Arc::new(BlockCache::new(budget));
    let dyn_store: DynStore = store.clone();
    let reader = SegmentReader::open(dyn_store, "seg/s", Some(len), Arc::clone(&cache))
        .await
        .unwrap();
    let run = reader.blocks(0, 6).await.unwrap();
    let stats = cache.stats();
    assert_eq!(stats.blocks, 2, "{stats:?}");
    assert_eq!(stats.used_bytes, held(0) + held(1), "{stats:?}");
    // Where each block's bytes start and end in memory.
    let at = |n: usize| run[n].bytes().as_ptr() as usize;
    let end = |n: usize| at(n) + run[n].bytes().len();
    // Blocks 2..6, not cached, are adjacent slices of the one run.
    for n in 2..5 {
        assert_eq!(end(n), at(n + 1), "block {} is not in the run", n + 1);
    }
    // Blocks 0 and 1, cached, were copied out of it.
    assert_ne!(end(1), at(2), "cached block 1 still shares the run");
    assert_ne!(end(0), at(1), "cached block 0 still shares the run");
}

#[tokio::test]
async fn a_damaged_block_is_a_typed_error() {
    let (store, whole, cache, len) = setup(1 << 30).await;
    let mut bytes = store.get("seg/s").await.unwrap().unwrap().bytes.to_vec();
    let h = whole.index().blocks()[3].clone();
    bytes[h.offset as usize + 10] ^= 0x40;
    store.put("seg/s", Bytes::from(bytes)).await.unwrap();
    let dyn_store: DynStore = store.clone();
    let reader = SegmentReader::open(dyn_store, "seg/s", Some(len), cache)
        .await
        .unwrap();
    let err = reader
        .scan(Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Format(f) if f.is_corruption()),
        "{err}"
    );
    assert!(err.to_string().contains("seg/s"), "{err}");
}

/// A segment with bytes appended after its footer is not the object the
/// manifest recorded: opening it at the recorded size is corruption, and a
/// truncated one too, both naming the key.
#[tokio::test]
async fn a_segment_longer_or_shorter_than_recorded_is_corruption() {
    let (store, _whole, cache, len) = setup(1 << 30).await;
    let good = store.get("seg/s").await.unwrap().unwrap().bytes.to_vec();
    for (what, bytes) in [
        ("one byte appended", [good.clone(), vec![0]].concat()),
        ("one byte cut", good[..good.len() - 1].to_vec()),
        // Shorter than the footer fetch: the range itself is out of bounds.
        ("cut to half", good[..good.len() / 2].to_vec()),
    ] {
        store.put("seg/s", Bytes::from(bytes)).await.unwrap();
        let dyn_store: DynStore = store.clone();
        let err = SegmentReader::open(dyn_store, "seg/s", Some(len), cache.clone())
            .await
            .expect_err(what);
        assert!(
            matches!(&err, Error::Format(f) if f.is_corruption()),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("seg/s"), "{what}: {err}");
    }
}
