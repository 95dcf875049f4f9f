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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{REEF, TempDir};
use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};
use reef_manifest::{Layout, Pins, SeededRng, SystemClock};

const NS: &str = "orders";

fn upserts(batch: i64) -> WriteRequest {
    WriteRequest {
        ops: (0..5)
            .map(|i| Op {
                kind: OpKind::Upsert,
                id: format!("d{}", (batch * 5 + i) % 12),
                doc: Some(Document::from_iter([(
                    "n".to_owned(),
                    Value::I64(batch * 5 + i),
                )])),
                precondition: None,
            })
            .collect(),
        idempotency_key: None,
    }
}

/// Builds the namespace: two folds compacted to level 1, one more fold at
/// level 0, three unfolded WAL records, two leases, two checkpoints; and a
/// second namespace whose HEAD names another version.
fn build(dir: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(dir));
        let options = EngineOptions {
            background: false,
            ..EngineOptions::default()
        };
        let engine = Engine::open(Arc::clone(&store), options).await.unwrap();
        let mut batch = 0;
        for round in 0..3 {
            for _ in 0..2 {
                engine.write(NS, upserts(batch)).await.unwrap();
                batch += 1;
            }
            engine.flush(NS).await.unwrap();
            if round == 1 {
                engine.compact(NS, true).await.unwrap();
            }
        }
        for _ in 0..3 {
            engine.write(NS, upserts(batch)).await.unwrap();
            batch += 1;
        }
        engine.write("other", upserts(0)).await.unwrap();
        engine.flush("other").await.unwrap();
        let current = engine.stats(NS).await.unwrap().manifest_version;
        engine.close().await.unwrap();
        let pins = Pins::new(
            Arc::clone(&store),
            Layout::new(NS).unwrap(),
            Arc::new(SystemClock),
            Arc::new(SeededRng::new(1)),
        );
        for holder in ["reader-a", "reader-b"] {
            pins.acquire(holder, current, 24 * 3_600_000).await.unwrap();
        }
        for name in ["nightly", "weekly"] {
            pins.create_checkpoint(name, current).await.unwrap();
        }
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Files (relative keys) of the namespace under `sub`, sorted.
fn keys(root: &Path, sub: &str) -> Vec<String> {
    let dir = root.join("ns").join(NS).join(sub);
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .map(|n| format!("ns/{NS}/{sub}/{n}"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    FlipStart,
    FlipMiddle,
    FlipEnd,
    Truncate,
    Delete,
    Swap,
}

const DAMAGES: [Damage; 6] = [
    Damage::FlipStart,
    Damage::FlipMiddle,
    Damage::FlipEnd,
    Damage::Truncate,
    Damage::Delete,
    Damage::Swap,
];

fn damage(root: &Path, key: &str, other: &str, how: Damage) {
    let path: PathBuf = root.join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    match how {
        Damage::FlipStart => bytes[0] ^= 0x01,
        Damage::FlipMiddle => bytes[n / 2] ^= 0x01,
        Damage::FlipEnd => bytes[n - 1] ^= 0x01,
        Damage::Truncate => bytes.truncate(n * 2 / 3),
        Damage::Delete => {
            std::fs::remove_file(&path).unwrap();
            return;
        }
        Damage::Swap => bytes = std::fs::read(root.join(other)).unwrap(),
    }
    std::fs::write(&path, bytes).unwrap();
}

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

    let wal = keys(&pristine, "wal");
    // The segments the current manifest lists (older ones are orphans
    // until GC, and damage to them is no problem).
    let segments: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(&pristine));
        let layout = Layout::new(NS).unwrap();
        let m = reef_manifest::ManifestStore::new(store, layout.clone())
            .load_current()
            .await
            .unwrap()
            .unwrap();
        m.segments
            .iter()
            .map(|s| layout.segment_key(s.id))
            .collect()
    });
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
