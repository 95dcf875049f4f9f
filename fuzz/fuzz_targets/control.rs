//! Fuzzes the HEAD, lease and checkpoint decoders, raw and behind a valid
//! frame whose kind and format version the first input byte chooses; what
//! decodes re-encodes, to the same bytes when the version is current.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame_v;
use reef_format::{CONTROL_FORMAT_VERSION, Checkpoint, Head, Lease};


fuzz_target!(|data: &[u8]| {
    let _ = Head::decode(data, "fuzz");
    let _ = Lease::decode(data, "fuzz");
    let _ = Checkpoint::decode(data, "fuzz");
    let Some((&which, body)) = data.split_first() else { return };
    let version = 1 + u16::from(which / 3) % CONTROL_FORMAT_VERSION;
    let current = |f: &[u8], again: Vec<u8>| {
        if version == CONTROL_FORMAT_VERSION {
            assert_eq!(again, f);
        }
    };
    match which % 3 {
        0 => {
            let f = frame_v(b"RFHD", version, body);
            if let Ok(h) = Head::decode(&f, "fuzz") {
                current(&f, h.encode().unwrap());
            }
        }
        1 => {
            let f = frame_v(b"RFLS", version, body);
            if let Ok(l) = Lease::decode(&f, "fuzz") {
                current(&f, l.encode().unwrap());
            }
        }
        _ => {
            let f = frame_v(b"RFCK", version, body);
            if let Ok(c) = Checkpoint::decode(&f, "fuzz") {
                current(&f, c.encode().unwrap());
            }
        }
    }
});
