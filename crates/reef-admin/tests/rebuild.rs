//! `reef rebuild` (issue #11): every manifest and HEAD of a namespace with
//! folded, compacted and unfolded data deleted (or damaged), folded WAL
//! and compaction inputs already collected (or not); rebuild must restore
//! a namespace whose reads equal the model, that verifies clean, and that
//! takes further writes and maintenance.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::TempDir;
use common::corrupt::{NS, reef, scan, snapshot, upserts};
use reef_engine::{Engine, EngineOptions};
use reef_format::{Op, OpKind, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore};

fn delete(id: &str) -> WriteRequest {
    WriteRequest {
        ops: vec![Op {
            kind: OpKind::Delete,
            id: id.to_owned(),
            doc: None,
            precondition: None,
        }],
        idempotency_key: None,
    }
}

/// Writes 8 batches of upserts and two deletes: folded, compacted, folded
/// again, optionally collected (GC with no grace), then 3 unfolded
/// batches. Returns the model (id -> n).
fn build(dir: &Path, collect: bool) -> BTreeMap<String, i64> {
    let mut model = BTreeMap::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(dir));
        let mut options = EngineOptions {
            background: false,
            ..EngineOptions::default()
        };
        options.compactor.gc_grace_ms = 0;
        let engine = Engine::open(Arc::clone(&store), options).await.unwrap();
        let apply = |b: i64, model: &mut BTreeMap<String, i64>| {
            for i in 0..5 {
                model.insert(format!("d{}", (b * 5 + i) % 12), b * 5 + i);
            }
            upserts(b)
        };
        let mut batch = 0;
        for round in 0..3 {
            for _ in 0..2 {
                let req = apply(batch, &mut model);
                engine.write(NS, req).await.unwrap();
                batch += 1;
            }
            if round == 1 {
                // A deletion that compaction sees.
                engine.write(NS, delete("d3")).await.unwrap();
                model.remove("d3");
            }
            engine.flush(NS).await.unwrap();
            if round == 1 {
                engine.compact(NS, true).await.unwrap();
            }
        }
        if collect {
            engine.gc(NS).await.unwrap();
        }
        for _ in 0..2 {
            let req = apply(batch, &mut model);
            engine.write(NS, req).await.unwrap();
            batch += 1;
        }
        engine.write(NS, delete("d7")).await.unwrap();
        model.remove("d7");
        engine.close().await.unwrap();
    });
    model
}

fn manifest_files(root: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join("ns").join(NS).join("manifest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn rebuild_and_check(root: &Path, model: &BTreeMap<String, i64>) {
    let (code, out, err) = reef(root, &["rebuild", NS]);
    assert_eq!(code, Some(0), "rebuild\n{out}{err}");
    assert!(out.contains("used"), "{out}");
    assert_eq!(&scan(root), model, "reads after rebuild\n{out}");
    let (code, out, err) = reef(root, &["verify", NS, "--deep"]);
    assert_eq!(code, Some(0), "verify after rebuild\n{out}{err}");
    // The namespace works on: a write, a fold, a compaction, GC.
    let (code, _, err) = reef(root, &["write", NS]);
    assert_eq!(code, Some(2), "an empty write is bad input: {err}");
    let mut model = model.clone();
    let wrote = common::reef(
        root.to_str().unwrap(),
        &["write", NS],
        r#"{"op":"upsert","id":"d0","doc":{"n":1000}}"#,
    );
    assert_eq!(wrote.code, Some(0), "{wrote:?}");
    model.insert("d0".to_owned(), 1000);
    for cmd in ["flush", "compact", "gc"] {
        let (code, _, err) = reef(root, &[cmd, NS]);
        assert_eq!(code, Some(0), "{cmd} after rebuild: {err}");
    }
    assert_eq!(scan(root), model, "reads after more writes and maintenance");
    let (code, out, err) = reef(root, &["verify", NS, "--deep"]);
    assert_eq!(code, Some(0), "verify at the end\n{out}{err}");
}

#[test]
fn rebuild_restores_a_namespace_whose_manifests_and_head_are_deleted() {
    let tmp = TempDir::new("rebuild-deleted");
    let model = build(tmp.path(), true);
    // Refused while a manifest decodes, and nothing written.
    let (code, _, err) = reef(tmp.path(), &["rebuild", NS]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("reef repair"), "{err}");
    let wal_left: Vec<String> = std::fs::read_dir(tmp.path().join("ns").join(NS).join("wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    assert_eq!(
        wal_left.len(),
        3,
        "GC collected the folded WAL: {wal_left:?}"
    );
    for f in manifest_files(tmp.path()) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_file(tmp.path().join("ns").join(NS).join("HEAD")).unwrap();
    rebuild_and_check(tmp.path(), &model);
}

#[test]
fn rebuild_restores_a_namespace_whose_manifests_are_damaged_and_uncollected() {
    let tmp = TempDir::new("rebuild-damaged");
    let model = build(tmp.path(), false);
    // Compaction inputs and folded WAL still there: the union repeats
    // entries, and reads still equal the model.
    for f in manifest_files(tmp.path()) {
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x01;
        std::fs::write(&f, bytes).unwrap();
    }
    rebuild_and_check(tmp.path(), &model);
}

/// No WAL left at all (everything folded and collected): rebuild starts
/// the LSNs over after what the WAL shows (nothing), reads equal the
/// model, and a dry run writes nothing.
#[test]
fn rebuild_with_no_wal_left_and_a_dry_run_that_writes_nothing() {
    let tmp = TempDir::new("rebuild-no-wal");
    let model = build(tmp.path(), true);
    for cmd in [&["flush", NS][..], &["gc", NS, "--grace", "0"]] {
        let (code, _, err) = reef(tmp.path(), cmd);
        assert_eq!(code, Some(0), "{cmd:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ns").join(NS).join("wal"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal"))
            .count(),
        0
    );
    for f in manifest_files(tmp.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let before = snapshot(tmp.path());
    let (code, out, err) = reef(tmp.path(), &["rebuild", NS, "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("would commit"), "{out}");
    assert_eq!(before, snapshot(tmp.path()), "the dry run wrote");
    rebuild_and_check(tmp.path(), &model);
}
