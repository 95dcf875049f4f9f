//! Golden files pin every object format byte for byte.
//!
//! For each object kind, `tests/golden/<kind>.v<version>.bin` holds the
//! encoding of a fixed sample (tests/common). The test encodes the sample
//! and compares bytes, then decodes the committed file and compares values.
//! An accidental format change fails here; an intended one bumps the format
//! version, which names a new file, and keeps the old file decoding (or
//! refused with a clear error) as a compatibility fixture.
//!
//! To write a missing golden file: `REEF_BLESS=1 cargo test -p reef-format
//! --test golden`. Existing files are never overwritten by blessing unless
//! `REEF_BLESS=overwrite`, so a change cannot be blessed by accident.

mod common;

use std::path::PathBuf;

use bytes::Bytes;
use reef_format::{
    CONTROL_FORMAT_VERSION, Checkpoint, Head, Lease, MANIFEST_FORMAT_VERSION, Manifest, Segment,
    WAL_FORMAT_VERSION, WalRecord, decode_document,
};

fn golden_path(kind: &str) -> PathBuf {
    versioned_path(kind, common::format_version(kind))
}

fn versioned_path(kind: &str, version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{kind}.v{version}.bin"))
}

#[test]
fn encodings_match_golden_files() {
    let bless = std::env::var("REEF_BLESS").ok();
    let mut failures = Vec::new();
    for (kind, bytes) in common::all_samples() {
        let path = golden_path(kind);
        let exists = path.exists();
        if bless.as_deref() == Some("overwrite") || (bless.is_some() && !exists) {
            std::fs::write(&path, &bytes).unwrap();
            eprintln!("blessed {}", path.display());
            continue;
        }
        let golden = match std::fs::read(&path) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{}: {e} (REEF_BLESS=1 writes it)", path.display()));
                continue;
            }
        };
        if golden != bytes.as_ref() {
            let first_diff = golden.iter().zip(bytes.iter()).position(|(a, b)| a != b);
            failures.push(format!(
                "{kind}: encoding differs from {} (golden {} bytes, now {} bytes, first difference at {:?}). \
                 A format change needs a version bump and a new golden file.",
                path.display(),
                golden.len(),
                bytes.len(),
                first_diff
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden(kind: &str) -> Bytes {
    Bytes::from(std::fs::read(golden_path(kind)).unwrap())
}

#[test]
fn golden_files_decode_to_the_samples() {
    assert_eq!(
        decode_document(&golden("document"), "golden").unwrap(),
        common::sample_document()
    );
    assert_eq!(
        WalRecord::decode(&golden("wal"), "golden").unwrap(),
        common::sample_wal()
    );
    assert_eq!(
        Manifest::decode(&golden("manifest"), "golden").unwrap(),
        common::sample_manifest()
    );
    assert_eq!(
        Head::decode(&golden("head"), "golden").unwrap(),
        common::sample_head()
    );
    assert_eq!(
        Lease::decode(&golden("lease"), "golden").unwrap(),
        common::sample_lease()
    );
    assert_eq!(
        Checkpoint::decode(&golden("checkpoint"), "golden").unwrap(),
        common::sample_checkpoint()
    );

    let seg = Segment::open(golden("segment"), "golden").unwrap();
    let entries: Vec<_> = seg.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries, common::sample_segment_entries());
    assert!(
        seg.footer().block_count > 1,
        "sample must span several blocks"
    );
}

/// Objects written by earlier format versions stay readable: each old
/// golden file decodes to the sample as that version could express it.
#[test]
fn previous_versions_still_decode() {
    let old = |kind: &str, v: u16| Bytes::from(std::fs::read(versioned_path(kind, v)).unwrap());
    // WAL v1 carried a writer_epoch that v2 dropped; nothing else changed.
    assert_eq!(
        WalRecord::decode(&old("wal", 1), "wal.v1").unwrap(),
        common::sample_wal()
    );
    // Manifest v1 had writer_epoch where v2 has gc_floor, and no retention.
    assert_eq!(
        Manifest::decode(&old("manifest", 1), "manifest.v1").unwrap(),
        Manifest {
            gc_floor: 0,
            idempotency_retention_ms: 0,
            recent_writers: vec![],
            ..common::sample_manifest()
        }
    );
    // Manifest v2 was hand-encoded; v3 is the same content as postcard.
    assert_eq!(
        Manifest::decode(&old("manifest", 2), "manifest.v2").unwrap(),
        common::sample_manifest()
    );
    // Control objects v1 were hand-encoded; v2 are postcard.
    assert_eq!(
        Head::decode(&old("head", 1), "head.v1").unwrap(),
        common::sample_head()
    );
    assert_eq!(
        Lease::decode(&old("lease", 1), "lease.v1").unwrap(),
        common::sample_lease()
    );
    assert_eq!(
        Checkpoint::decode(&old("checkpoint", 1), "checkpoint.v1").unwrap(),
        common::sample_checkpoint()
    );
    // A new version must add its predecessor's file to this test.
    assert_eq!(WAL_FORMAT_VERSION, 2);
    assert_eq!(MANIFEST_FORMAT_VERSION, 3);
    assert_eq!(CONTROL_FORMAT_VERSION, 2);
}

#[test]
fn manifest_sample_accounting_holds() {
    common::sample_manifest()
        .check_accounting("golden")
        .unwrap();
}
