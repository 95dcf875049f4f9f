//! Fuzzes the manifest decoder, raw and behind a valid frame; what decodes
//! must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame;
use reef_format::Manifest;


fuzz_target!(|data: &[u8]| {
    let _ = Manifest::decode(data, "fuzz");
    let framed = frame(b"RFMF", data);
    if let Ok(m) = Manifest::decode(&framed, "fuzz") {
        let _ = m.check_accounting("fuzz");
        assert_eq!(m.encode().expect("a decoded manifest re-encodes"), framed);
    }
});
