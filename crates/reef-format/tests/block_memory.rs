//! What a decoded block costs in memory: one allocation per block (its
//! slots), not one per entry, and no more than `Block::mem_bytes`, which
//! the block cache charges against its budget.

use bytes::Bytes;
use reef_format::segment::{Block, SLOT_BYTES};
use reef_format::{Document, Entry, Limits, Segment, SegmentBuilder, SegmentOptions, Value};

/// A one-block segment of `n` entries (puts of 100-byte documents, every
/// third id with a tombstone below it), the block's bytes and its offset.
fn one_block(n: u64) -> (Vec<Entry>, Bytes, u64) {
    let doc = Document::from_iter([("v".to_owned(), Value::String("x".repeat(100)))]);
    let doc = Bytes::from(reef_format::encode_document(&doc, &Limits::default()).unwrap());
    let mut entries = Vec::new();
    for i in 0..n {
        let id = format!("doc-{i:06}");
        entries.push(Entry::put(id.clone(), 2 * i + 2, doc.clone()));
        if i % 3 == 0 {
            entries.push(Entry::delete(id, 2 * i + 1));
        }
    }
    let mut b = SegmentBuilder::new(SegmentOptions {
        block_bytes_target: 1 << 20,
        ..SegmentOptions::default()
    });
    for e in &entries {
        b.add(e).unwrap();
    }
    let bytes = b.finish().unwrap().bytes;
    let seg = Segment::open(bytes.clone(), "t").unwrap();
    let [h] = seg.index().blocks() else {
        panic!("{} blocks, want one", seg.index().blocks().len());
    };
    let at = h.offset as usize;
    (entries, bytes.slice(at..at + h.len as usize), h.offset)
}

#[test]
fn decoding_a_block_allocates_once_and_holds_what_it_charges() {
    let (entries, raw, offset) = one_block(200);
    let mut decoded = None;
    let info = allocation_counter::measure(|| {
        decoded = Some(Block::decode(&raw, "t", offset).unwrap());
    });
    let block = decoded.unwrap();
    assert_eq!(block.len(), entries.len());
    // The slots, and at most the header `Bytes` allocates the first time
    // a buffer is shared; an owned id per entry would be hundreds.
    assert!(info.count_total <= 2, "{info:?}");
    let slots = entries.len() * SLOT_BYTES;
    assert!(info.bytes_current as usize <= slots + 64, "{info:?}");
    assert_eq!(block.mem_bytes(), raw.len() + slots);
    // The slots are small beside what they describe: a fifth more than
    // the bytes of entries with 100-byte documents (an owned `Entry` each
    // was twice as much again).
    assert!(
        block.mem_bytes() < raw.len() * 5 / 4,
        "{}",
        block.mem_bytes()
    );
}

#[test]
fn a_decoded_block_yields_its_entries_and_finds_its_ids() {
    let (entries, raw, offset) = one_block(50);
    let block = Block::decode(&raw, "t", offset).unwrap();
    assert_eq!(block.entries().collect::<Vec<_>>(), entries);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(block.entry(i).as_ref(), Some(e));
        assert_eq!((block.id(i), block.version(i)), (e.id.as_str(), e.version));
        // An id's first entry is its newest version.
        let first = entries.iter().position(|f| f.id == e.id).unwrap();
        assert_eq!(block.lower_bound(&e.id), first);
    }
    assert_eq!(block.lower_bound("doc-"), 0);
    assert_eq!(block.lower_bound("doc-999999"), entries.len());
    assert_eq!(block.entry(entries.len()), None);
    assert_eq!(
        (block.id(entries.len()), block.version(entries.len())),
        ("", 0)
    );
    // A copy on its own bytes is the same block, on another buffer.
    let held = block.mem_bytes();
    let unshared = block.unshared();
    assert_eq!(unshared.entries().collect::<Vec<_>>(), entries);
    assert_eq!(unshared.mem_bytes(), held);
    assert_eq!(unshared.bytes(), &raw);
    assert_ne!(unshared.bytes().as_ptr(), raw.as_ptr());
}
