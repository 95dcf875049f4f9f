//! Fuzzes segment reading: opening raw input and reading every block and a
//! few ids; and the block decoder behind a valid block CRC.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reef_format::Segment;
use reef_format::segment::{Block, SegmentFooter};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let _ = SegmentFooter::decode(data, data.len() as u64, "fuzz");
    if let Ok(seg) = Segment::open(bytes, "fuzz") {
        let mut ids = Vec::new();
        for e in seg.iter() {
            match e {
                Ok(e) => ids.push(e.id),
                Err(_) => break,
            }
        }
        for id in ids.iter().take(8) {
            let _ = seg.get(id, u64::MAX);
        }
    }
    let mut block = data.to_vec();
    let crc = reef_format::crc32(&block);
    block.extend_from_slice(&crc.to_le_bytes());
    if let Ok(b) = Block::decode(&Bytes::from(block), "fuzz", 0) {
        for (i, e) in b.entries().enumerate() {
            assert!(b.lower_bound(&e.id) <= i);
            assert_eq!((b.id(i), b.version(i)), (e.id.as_str(), e.version));
        }
    }
});
