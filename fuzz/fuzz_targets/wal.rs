//! Fuzzes the WAL record decoder, both on raw input (frame checks) and on
//! the input wrapped in a valid frame (the body decoder behind the CRC).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame;
use reef_format::WalRecord;


fuzz_target!(|data: &[u8]| {
    let _ = WalRecord::decode(&Bytes::copy_from_slice(data), "fuzz");
    if let Ok(rec) = WalRecord::decode(&Bytes::from(frame(b"RFWL", data)), "fuzz") {
        // Whatever decodes must re-encode to the same body.
        let again = rec.encode().expect("a decoded record re-encodes");
        assert_eq!(&again[16..again.len() - 4], data);
    }
});
