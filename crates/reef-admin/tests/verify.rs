//! `reef verify` against a corruption matrix (issue #11): a namespace with
//! folded, compacted and unfolded data, two leases and two checkpoints;
//! every object kind damaged in turn (a byte flipped at the start, middle
//! and end, truncated, deleted, swapped with another object of its kind),
//! each on a fresh copy. Verify must exit 4 and name the damaged object,
//! except where nothing in the bucket records the object (a deleted lease
//! or checkpoint, a lease swapped for another: those read as released,
//! deleted, or the other lease), where it must still be clean rather than
//! invent a problem. An undamaged copy verifies clean.

mod common;

use std::path::Path;

use common::corrupt::{DAMAGES, Damage, NS, build, copy_dir, current_segments, damage, keys};
use common::{REEF, TempDir};

fn verify(root: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(REEF)
        .args(["--store", root.to_str().unwrap(), "verify", NS, "--deep"])
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_damaged_object_is_reported_by_its_key() {
    let tmp = TempDir::new("verify-matrix");
    let pristine = tmp.path().join("pristine");
    build(&pristine);
    let (code, text) = verify(&pristine);
    assert_eq!(
        code,
        Some(0),
        "the undamaged namespace verifies clean:\n{text}"
    );
    // Progress is for terminals only: piped, stderr stays empty.
    let piped = std::process::Command::new(REEF)
        .args([
            "--store",
            pristine.to_str().unwrap(),
            "verify",
            NS,
            "--deep",
        ])
        .output()
        .unwrap();
    assert!(
        piped.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&piped.stderr)
    );

    let wal = keys(&pristine, "wal");
    // The segments the current manifest lists (older ones are orphans
    // until GC, and damage to them is no problem).
    let segments = current_segments(&pristine);
    let manifests = keys(&pristine, "manifest");
    let leases = keys(&pristine, "lease");
    let checkpoints = keys(&pristine, "checkpoint");
    assert!(
        wal.len() >= 3 && segments.len() >= 2 && manifests.len() >= 2,
        "{wal:?} {segments:?} {manifests:?}"
    );
    assert_eq!((leases.len(), checkpoints.len()), (2, 2));
    let head = format!("ns/{NS}/HEAD");
    let newest_manifest = manifests.last().unwrap().clone();
    // (kind, the object damaged, another object of its kind to swap in)
    let targets = [
        (
            "wal",
            wal[wal.len() - 3].clone(),
            wal[wal.len() - 1].clone(),
        ),
        ("segment", segments[0].clone(), segments[1].clone()),
        ("manifest", newest_manifest.clone(), manifests[0].clone()),
        ("head", head.clone(), "ns/other/HEAD".to_owned()),
        ("lease", leases[0].clone(), leases[1].clone()),
        ("checkpoint", checkpoints[0].clone(), checkpoints[1].clone()),
    ];
    let mut cases = 0;
    for (kind, key, other) in &targets {
        for how in DAMAGES {
            cases += 1;
            let copy = tmp.path().join(format!("case-{cases}"));
            copy_dir(&pristine, &copy);
            damage(&copy, key, other, how);
            let (code, text) = verify(&copy);
            // Nothing in the bucket records which leases and checkpoints
            // exist, nor a lease's id inside it: these read as released,
            // deleted, or the other lease.
            let unrecorded = matches!(
                (*kind, how),
                ("lease", Damage::Delete | Damage::Swap) | ("checkpoint", Damage::Delete)
            );
            if unrecorded {
                assert_eq!(
                    code,
                    Some(0),
                    "{kind} {how:?} {key}: nothing records it\n{text}"
                );
                continue;
            }
            assert_eq!(
                code,
                Some(4),
                "{kind} {how:?} {key}: must be a problem\n{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.contains("PROBLEM") && l.contains(key.as_str())),
                "{kind} {how:?}: the report names {key}\n{text}"
            );
            assert!(!text.contains("panicked"), "{text}");
        }
    }
    assert_eq!(cases, 36);
}
