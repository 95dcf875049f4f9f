//! The corruption matrix's namespace (issue #11), shared by the `verify`
//! and `repair` tests: folded, compacted and unfolded data, two leases, two
//! checkpoints, and the ways to damage one object.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, OpKind, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};
use reef_manifest::{Layout, Pins, SeededRng, SystemClock};

use super::REEF;

pub const NS: &str = "orders";

pub fn upserts(batch: i64) -> WriteRequest {
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
pub fn build(dir: &Path) {
    build_with(dir, false);
}

/// As [`build`], with GC (no grace) run after the folds: folded WAL and
/// compaction inputs are collected, so no older copy of anything exists.
pub fn build_collected(dir: &Path) {
    build_with(dir, true);
}

fn build_with(dir: &Path, collect: bool) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(dir));
        let mut options = EngineOptions {
            background: false,
            ..EngineOptions::default()
        };
        options.compactor.gc_grace_ms = 0;
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
        if collect {
            engine.gc(NS).await.unwrap();
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

pub fn copy_dir(from: &Path, to: &Path) {
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
pub fn keys(root: &Path, sub: &str) -> Vec<String> {
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
pub enum Damage {
    FlipStart,
    FlipMiddle,
    FlipEnd,
    Truncate,
    Delete,
    Swap,
}

pub const DAMAGES: [Damage; 6] = [
    Damage::FlipStart,
    Damage::FlipMiddle,
    Damage::FlipEnd,
    Damage::Truncate,
    Damage::Delete,
    Damage::Swap,
];

pub fn damage(root: &Path, key: &str, other: &str, how: Damage) {
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

/// Batches `build` writes to `NS`; the first `FOLDED_BATCHES` are folded.
pub const BATCHES: i64 = 9;
pub const FOLDED_BATCHES: i64 = 6;

/// What `NS` holds after its first `batches` batches: id -> `n`.
pub fn model(batches: i64) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for b in 0..batches {
        for i in 0..5 {
            m.insert(format!("d{}", (b * 5 + i) % 12), b * 5 + i);
        }
    }
    m
}

/// Runs `reef --store <root> <args>`: exit code, stdout, stderr.
pub fn reef(root: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(REEF)
        .arg("--store")
        .arg(root)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `root` with its bytes.
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// A full scan as id -> n.
pub fn scan(root: &Path) -> BTreeMap<String, i64> {
    let (code, out, err) = reef(root, &["scan", NS]);
    assert_eq!(code, Some(0), "scan: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["doc"]["n"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Keys of the segments the current manifest of `NS` lists (older ones are
/// orphans until GC).
pub fn current_segments(root: &Path) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(root));
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
    })
}
