//! Fuzzes the manifest decoder, raw and behind a valid frame; what decodes
//! must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame_v;
use reef_format::{MANIFEST_FORMAT_VERSION, Manifest};


fuzz_target!(|data: &[u8]| {
    let _ = Manifest::decode(data, "fuzz");
    for version in 1..=MANIFEST_FORMAT_VERSION {
        let framed = frame_v(b"RFMF", version, data);
        if let Ok(m) = Manifest::decode(&framed, "fuzz") {
            let _ = m.check_accounting("fuzz");
            let again = m.encode().expect("a decoded manifest re-encodes");
            // The current version re-encodes to the same bytes.
            if version == MANIFEST_FORMAT_VERSION {
                assert_eq!(again, framed);
            }
        }
    }
});
