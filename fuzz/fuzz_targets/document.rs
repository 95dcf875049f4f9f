//! Fuzzes the document decoder; what decodes must re-encode to the same
//! bytes (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reef_format::{Limits, decode_document, encode_document};

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = decode_document(data, "fuzz") {
        let limits = Limits { doc_bytes_max: reef_format::limits::DOC_BYTES_HARD_MAX, ..Limits::default() };
        assert_eq!(encode_document(&doc, &limits).expect("a decoded document re-encodes"), data);
    }
});
