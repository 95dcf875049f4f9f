//! Fuzzes the HEAD, lease and checkpoint decoders, raw and behind a valid
//! frame chosen by the first input byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "frame.rs"]
mod frame;
use frame::frame;
use reef_format::{Checkpoint, Head, Lease};


fuzz_target!(|data: &[u8]| {
    let _ = Head::decode(data, "fuzz");
    let _ = Lease::decode(data, "fuzz");
    let _ = Checkpoint::decode(data, "fuzz");
    let Some((&which, body)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            let f = frame(b"RFHD", body);
            if let Ok(h) = Head::decode(&f, "fuzz") {
                assert_eq!(h.encode().unwrap(), f);
            }
        }
        1 => {
            let f = frame(b"RFLS", body);
            if let Ok(l) = Lease::decode(&f, "fuzz") {
                assert_eq!(l.encode().unwrap(), f);
            }
        }
        _ => {
            let f = frame(b"RFCK", body);
            if let Ok(c) = Checkpoint::decode(&f, "fuzz") {
                assert_eq!(c.encode().unwrap(), f);
            }
        }
    }
});
