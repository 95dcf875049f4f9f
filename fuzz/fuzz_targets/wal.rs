//! Fuzzes the WAL record decoder, both on raw input (frame checks) and on
//! the input wrapped in a valid frame (the body decoder behind the CRC).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reef_format::WalRecord;

fn frame(magic: &[u8; 4], body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(magic);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = reef_format::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Bytes::from(out)
}

fuzz_target!(|data: &[u8]| {
    let _ = WalRecord::decode(&Bytes::copy_from_slice(data), "fuzz");
    if let Ok(rec) = WalRecord::decode(&frame(b"RFWL", data), "fuzz") {
        // Whatever decodes must re-encode to the same body.
        let again = rec.encode().expect("a decoded record re-encodes");
        assert_eq!(&again[16..again.len() - 4], data);
    }
});
