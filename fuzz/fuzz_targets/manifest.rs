//! Fuzzes the manifest decoder, raw and behind a valid frame; what decodes
//! must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reef_format::Manifest;

fn frame(magic: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(magic);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = reef_format::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::decode(data, "fuzz");
    let framed = frame(b"RFMF", data);
    if let Ok(m) = Manifest::decode(&framed, "fuzz") {
        let _ = m.check_accounting("fuzz");
        assert_eq!(m.encode().expect("a decoded manifest re-encodes"), framed);
    }
});
