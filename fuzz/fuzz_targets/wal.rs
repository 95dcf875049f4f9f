//! Fuzzes the WAL record decoder, both on raw input (frame checks) and on
//! the input wrapped in a valid frame (the body decoder behind the CRC).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame_v;
use reef_format::{WAL_FORMAT_VERSION, WalRecord};


fuzz_target!(|data: &[u8]| {
    let _ = WalRecord::decode(&Bytes::copy_from_slice(data), "fuzz");
    for version in 1..=WAL_FORMAT_VERSION {
        let framed = Bytes::from(frame_v(b"RFWL", version, data));
        if let Ok(rec) = WalRecord::decode(&framed, "fuzz") {
            let again = rec.encode().expect("a decoded record re-encodes");
            // The current version re-encodes to the same body.
            if version == WAL_FORMAT_VERSION {
                assert_eq!(&again[16..again.len() - 4], data);
            }
        }
    }
});
