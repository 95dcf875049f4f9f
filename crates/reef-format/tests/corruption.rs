//! Every stored object kind detects damage: flipping any single byte (with
//! several bit patterns) or truncating at any length yields a typed
//! corruption error from a full decode, never a panic and never data.
//!
//! Documents are excluded from the flip test on purpose: they never stand
//! alone in a bucket, only inside a CRC-covered WAL record or segment
//! block; they are covered by the truncation test and by
//! `properties.rs::arbitrary_bytes_never_panic`.

mod common;

use bytes::Bytes;

const XOR_PATTERNS: [u8; 4] = [0x01, 0x80, 0x5a, 0xff];

#[test]
fn every_single_byte_flip_is_detected() {
    for (kind, bytes) in common::all_samples() {
        if kind == "document" {
            continue;
        }
        common::decode_fully(kind, &bytes).unwrap_or_else(|e| panic!("{kind} sample: {e}"));
        for pos in 0..bytes.len() {
            for pattern in XOR_PATTERNS {
                let mut damaged = bytes.to_vec();
                damaged[pos] ^= pattern;
                match common::decode_fully(kind, &Bytes::from(damaged)) {
                    Err(e) if e.is_corruption() => {
                        let text = e.to_string();
                        assert!(
                            text.contains(" t:") || text.contains(" t "),
                            "{kind}: error must name the object: {text}"
                        );
                    }
                    Err(e) => panic!(
                        "{kind}: flip {pattern:#04x} at {pos} gave a non-corruption error: {e}"
                    ),
                    Ok(()) => panic!("{kind}: flip {pattern:#04x} at {pos} went undetected"),
                }
            }
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    for (kind, bytes) in common::all_samples() {
        for len in 0..bytes.len() {
            match common::decode_fully(kind, &bytes.slice(..len)) {
                Err(e) if e.is_corruption() => {}
                Err(e) => panic!("{kind}: truncation to {len} gave a non-corruption error: {e}"),
                Ok(()) => panic!(
                    "{kind}: truncation to {len} of {} went undetected",
                    bytes.len()
                ),
            }
        }
    }
}

#[test]
fn appended_garbage_is_detected() {
    for (kind, bytes) in common::all_samples() {
        // A segment is read from its end (the tail locates the footer), so
        // bytes appended after it hide the tail and are caught as bad magic.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(b"junk");
        let err = common::decode_fully(kind, &Bytes::from(longer)).unwrap_err();
        assert!(err.is_corruption(), "{kind}: {err}");
    }
}

/// Each block carries only its own CRC, so a block fetched from the wrong
/// range (or the wrong segment) is internally valid; the index check must
/// still refuse it instead of answering from the wrong keys.
#[test]
fn a_valid_block_in_the_wrong_place_is_detected() {
    let seg = reef_format::Segment::open(common::sample_segment(), "t").unwrap();
    let bytes = common::sample_segment();
    let blocks = seg.index().blocks();
    assert!(blocks.len() > 2);
    let raw = |i: usize| {
        let h = &blocks[i];
        bytes.slice(h.offset as usize..(h.offset + u64::from(h.len)) as usize)
    };
    for i in 0..blocks.len() {
        seg.index().decode_block(i, &raw(i), "t").unwrap();
        let j = (i + 1) % blocks.len();
        let err = seg.index().decode_block(i, &raw(j), "t").unwrap_err();
        assert!(
            err.is_corruption(),
            "block {j} accepted as block {i}: {err}"
        );
    }
}
