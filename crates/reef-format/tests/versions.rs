//! Forward compatibility: an object written by a newer Reef (a higher
//! format version with a valid checksum) is refused with a clear
//! `UnsupportedVersion` error naming the object, never misread, and never
//! reported as corruption.

mod common;

use bytes::Bytes;
use reef_format::FormatError;

/// Rewrites the version field of a framed object and re-seals its CRC, as a
/// newer writer would have produced it.
fn bump_framed(bytes: &[u8], version: u16) -> Bytes {
    let mut v = bytes.to_vec();
    v[4..6].copy_from_slice(&version.to_le_bytes());
    let body_end = v.len() - 4;
    let crc = reef_format::crc32(&v[..body_end]);
    v[body_end..].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(v)
}

/// Same for a segment: the version is the footer's first field, and the
/// tail CRC covers footer ‖ footer_len.
fn bump_segment(bytes: &[u8], version: u16) -> Bytes {
    let mut v = bytes.to_vec();
    let n = v.len();
    let footer_len = u32::from_le_bytes(v[n - 12..n - 8].try_into().unwrap()) as usize;
    let footer_at = n - 12 - footer_len;
    v[footer_at..footer_at + 2].copy_from_slice(&version.to_le_bytes());
    let crc = reef_format::crc32(&v[footer_at..n - 8]);
    v[n - 8..n - 4].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(v)
}

#[test]
fn newer_versions_are_refused_clearly() {
    for (kind, bytes) in common::all_samples() {
        if kind == "document" {
            continue; // versioned by the object that contains it
        }
        let current = common::format_version(kind);
        let newer = if kind == "segment" {
            bump_segment(&bytes, current + 1)
        } else {
            bump_framed(&bytes, current + 1)
        };
        match common::decode_fully(kind, &newer) {
            Err(
                e @ FormatError::UnsupportedVersion {
                    found, supported, ..
                },
            ) if found == current + 1 && supported == current => {
                assert!(!e.is_corruption());
                let text = e.to_string();
                assert!(
                    text.contains("upgrade Reef") && text.contains(" t:"),
                    "{kind}: {text}"
                );
            }
            other => panic!("{kind}: expected UnsupportedVersion, got {other:?}"),
        }
        // Version 0 was never written by anyone: damage, not the future.
        let zero = if kind == "segment" {
            bump_segment(&bytes, 0)
        } else {
            bump_framed(&bytes, 0)
        };
        let err = common::decode_fully(kind, &zero).unwrap_err();
        assert!(
            err.is_corruption() && err.to_string().contains("version 0"),
            "{kind}: {err}"
        );
    }
}
