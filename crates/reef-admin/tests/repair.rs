//! `reef repair` against the corruption matrix (issue #11): every object
//! kind damaged in turn (a byte flipped at the start, middle and end,
//! truncated, deleted, swapped), each on a fresh copy of the same
//! namespace. Repair must either fix it losing nothing, or refuse with
//! exit 3, write nothing, and name the loss; with `--accept-data-loss` it
//! then gives up exactly that. Afterwards `verify --deep` is clean and a
//! full scan equals the model (of every batch, or of the batches before
//! the named cut). No case panics, and no read returns data the model
//! does not have.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::TempDir;
use common::corrupt::{
    BATCHES, DAMAGES, FOLDED_BATCHES, NS, build, copy_dir, current_segments, damage, keys, model,
    reef, scan, snapshot,
};
use reef_manifest::Layout;
use reef_manifest::store::{DynStore, LocalStore};

#[test]
fn repair_fixes_every_damaged_object_or_names_the_loss() {
    let tmp = TempDir::new("repair-matrix");
    let pristine = tmp.path().join("pristine");
    build(&pristine);
    let (code, out, _) = reef(&pristine, &["repair", NS]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("step    run GC"), "{out}");

    let pristine = tmp.path().join("pristine2");
    build(&pristine);
    let wal = keys(&pristine, "wal");
    let segments = current_segments(&pristine);
    let manifests = keys(&pristine, "manifest");
    let leases = keys(&pristine, "lease");
    let checkpoints = keys(&pristine, "checkpoint");
    // The first unfolded record: damage there cuts every batch after the
    // folded ones.
    let first_unfolded = wal[wal.len() - 3].clone();
    let targets = [
        ("wal", first_unfolded.clone(), wal[wal.len() - 1].clone()),
        ("segment", segments[0].clone(), segments[1].clone()),
        (
            "manifest",
            manifests.last().unwrap().clone(),
            manifests[0].clone(),
        ),
        ("head", format!("ns/{NS}/HEAD"), "ns/other/HEAD".to_owned()),
        ("lease", leases[0].clone(), leases[1].clone()),
        ("checkpoint", checkpoints[0].clone(), checkpoints[1].clone()),
    ];
    let mut cases = 0;
    let mut refused = 0;
    for (kind, key, other) in &targets {
        for how in DAMAGES {
            cases += 1;
            let case = format!("{kind} {how:?} {key}");
            let copy = tmp.path().join(format!("case-{cases}"));
            copy_dir(&pristine, &copy);
            damage(&copy, key, other, how);

            // HEAD is a hint: whatever happened to it, reads go on
            // (the newest manifest is found by listing) before any repair.
            if *kind == "head" {
                assert_eq!(scan(&copy), model(BATCHES), "{case}: reads before repair");
            }
            // A dry run writes nothing.
            let before = snapshot(&copy);
            let (code, out, err) = reef(&copy, &["repair", NS, "--dry-run"]);
            assert!(matches!(code, Some(0 | 3)), "{case}: dry run\n{out}{err}");
            assert_eq!(before, snapshot(&copy), "{case}: the dry run wrote");

            let (code, out, err) = reef(&copy, &["repair", NS]);
            let mut expected = model(BATCHES);
            if *kind == "wal" {
                // Nothing else holds the first unfolded record: refused,
                // nothing written, the cut LSNs named.
                assert_eq!(code, Some(3), "{case}: must refuse\n{out}{err}");
                assert!(err.contains("--accept-data-loss"), "{case}: {err}");
                assert_eq!(before, snapshot(&copy), "{case}: a refusal wrote");
                let lsn = first_unfolded.rsplit('/').next().unwrap();
                assert!(
                    out.lines().any(|l| l.contains("LOSS") && l.contains(lsn)),
                    "{case}: the loss names {lsn}\n{out}"
                );
                refused += 1;
                let (code, out, err) = reef(&copy, &["repair", NS, "--accept-data-loss"]);
                assert_eq!(code, Some(0), "{case}: accepted\n{out}{err}");
                expected = model(FOLDED_BATCHES);
            } else {
                assert_eq!(code, Some(0), "{case}: repair\n{out}{err}");
                assert!(!out.contains("LOSS"), "{case}: nothing is lost\n{out}");
            }
            let (code, out, err) = reef(&copy, &["verify", NS, "--deep"]);
            assert_eq!(code, Some(0), "{case}: verify after repair\n{out}{err}");
            assert_eq!(scan(&copy), expected, "{case}: reads after repair");
            // A second repair finds nothing more to fix than GC.
            let (code, out, err) = reef(&copy, &["repair", NS]);
            assert_eq!(code, Some(0), "{case}: second repair\n{out}{err}");
            assert!(
                out.lines()
                    .filter(|l| l.contains("step "))
                    .all(|l| l.contains("GC")),
                "{case}: the second repair had more to do\n{out}"
            );
        }
    }
    assert_eq!((cases, refused), (36, 6));
}

/// The manifests that folded some WAL are lost and GC already collected
/// that WAL; newer unfolded records are whole. Repair must not cut those
/// (they were acknowledged and nothing is wrong with them), nor let its
/// own GC delete the lost fold's intact segment: it names both, resumes
/// the WAL after the hole, carries the segment, and with
/// `--accept-data-loss` every batch reads back.
#[test]
fn a_lost_fold_whose_wal_was_collected_keeps_the_wal_after_it() {
    let tmp = TempDir::new("repair-lost-fold");
    let root = tmp.path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store: DynStore = Arc::new(LocalStore::new(root));
        let mut options = reef_engine::EngineOptions {
            background: false,
            ..reef_engine::EngineOptions::default()
        };
        options.compactor.gc_grace_ms = 0;
        let engine = reef_engine::Engine::open(Arc::clone(&store), options)
            .await
            .unwrap();
        for b in 0..6 {
            engine.write(NS, common::corrupt::upserts(b)).await.unwrap();
            if b == 1 || b == 3 {
                engine.flush(NS).await.unwrap();
            }
            if b == 1 {
                // Pinned, so GC keeps it: the manifest repair falls back on.
                let v = engine.stats(NS).await.unwrap().manifest_version;
                reef_manifest::Pins::new(
                    Arc::clone(&store),
                    Layout::new(NS).unwrap(),
                    Arc::new(reef_manifest::SystemClock),
                    Arc::new(reef_manifest::SeededRng::new(1)),
                )
                .create_checkpoint("first", v)
                .await
                .unwrap();
            }
            if b == 3 {
                engine.gc(NS).await.unwrap();
            }
        }
        engine.close().await.unwrap();
    });
    // Lose every manifest after the first fold's (GC kept it for the
    // checkpoint, and collected the second fold's WAL).
    let manifests = keys(root, "manifest");
    assert!(manifests.len() >= 2, "{manifests:?}");
    for key in &manifests[1..] {
        std::fs::remove_file(root.join(key)).unwrap();
    }
    let wal = keys(root, "wal");
    assert_eq!(wal.len(), 2, "GC collected the folded WAL: {wal:?}");

    let (code, out, err) = reef(root, &["repair", NS]);
    assert_eq!(code, Some(3), "refused\n{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("LOSS") && l.contains("seg/")),
        "the lost fold's segment is named\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("LOSS") && l.contains("LSNs 3..=4")),
        "the collected LSNs are named\n{out}"
    );
    assert!(!out.contains("cut"), "nothing is cut\n{out}");
    let (code, out, err) = reef(root, &["repair", NS, "--accept-data-loss"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let mut expected = BTreeMap::new();
    for b in 0..6 {
        for i in 0..5 {
            expected.insert(format!("d{}", (b * 5 + i) % 12), b * 5 + i);
        }
    }
    assert_eq!(scan(root), expected);
    let (code, out, err) = reef(root, &["verify", NS, "--deep"]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// All values the model held for each id at any point of its history.
fn history(batches: i64) -> BTreeMap<String, Vec<i64>> {
    let mut h: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for b in 0..batches {
        for i in 0..5 {
            h.entry(format!("d{}", (b * 5 + i) % 12))
                .or_default()
                .push(b * 5 + i);
        }
    }
    h
}

/// After GC collected the folded WAL and the compaction inputs, a damaged
/// current segment has no intact copy: repair refuses naming its id and
/// version ranges, and with `--accept-data-loss` drops it. Reads then
/// never invent data: each id is absent or holds a value it once had.
/// Also: an orphan segment with a format-v1 id (a creation time in the
/// high bits) does not push the repair's version out of reach.
#[test]
fn a_damaged_segment_with_no_intact_copy_is_named_then_dropped() {
    let tmp = TempDir::new("repair-collected");
    let root = tmp.path().to_path_buf();
    common::corrupt::build_collected(&root);
    let segments: Vec<String> = keys(&root, "seg");
    let target = segments.last().unwrap().clone();
    // A v1-era orphan: creation time (ms) in the high 64 bits.
    let v1_id: u128 = (1_790_000_000_000u128 << 64) | 7;
    std::fs::copy(
        root.join(&segments[0]),
        root.join(format!("ns/{NS}/seg/{v1_id:032x}.seg")),
    )
    .unwrap();
    let mut bytes = std::fs::read(root.join(&target)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(root.join(&target), bytes).unwrap();

    let (code, out, err) = reef(&root, &["repair", NS]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("LOSS") && l.contains(&target) && l.contains("versions")),
        "{out}"
    );
    let (code, out, err) = reef(&root, &["repair", NS, "--accept-data-loss"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let committed: u64 = out
        .lines()
        .find_map(|l| l.split("commit manifest ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(committed < 100, "the v1 id is not a version: {out}");
    let (code, out, err) = reef(&root, &["verify", NS, "--deep"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let history = history(common::corrupt::BATCHES);
    for (id, n) in scan(&root) {
        assert!(
            history.get(&id).is_some_and(|h| h.contains(&n)),
            "{id} = {n} was never written"
        );
    }
}
