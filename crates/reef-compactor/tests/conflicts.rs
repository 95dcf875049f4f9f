//! The commit matrix (commit.rs): a change that lost the race to the next
//! manifest version rebases when it commutes with the winner's change and
//! is abandoned when it overlaps it. Checked on stale bases directly.

use std::sync::Arc;

use reef_compactor::{Change, CompactorOptions, Outcome, commit_change};
use reef_format::{Manifest, SegmentMeta, Setsum};
use reef_manifest::store::{DynStore, MemoryStore};
use reef_manifest::{Layout, ManifestStore};

fn opts() -> CompactorOptions {
    CompactorOptions::default()
}

fn seg(id: u128, level: u8, lo: &str, hi: &str, tag: u8) -> SegmentMeta {
    SegmentMeta {
        id,
        level,
        object_bytes: 100,
        entry_count: 1,
        tombstone_count: 0,
        min_version: 1,
        max_version: 1,
        setsum: Setsum::of_hash(&[tag; 32]),
        min_id: lo.into(),
        max_id: hi.into(),
    }
}

fn fold(from: u64, s: SegmentMeta) -> Change {
    Change::Fold {
        from_lsn: from,
        to_lsn: from + 1,
        last_version: from + 1,
        written: (s.setsum, 1),
        segment: Some(s),
        dropped: (Setsum::EMPTY, 0),
        idempotency: vec![],
        writers: vec![7],
    }
}

fn compact(inputs: &[&SegmentMeta], id: u128) -> Change {
    let setsum = inputs.iter().fold(Setsum::EMPTY, |a, s| a.add(&s.setsum));
    let mut out = seg(id, 1, "a", "z", 0);
    out.setsum = setsum;
    out.entry_count = inputs.len() as u64;
    Change::Compact {
        inputs: inputs.iter().map(|s| s.id).collect(),
        outputs: vec![out],
        dropped: (Setsum::EMPTY, 0),
    }
}

async fn committed(o: Outcome) -> Manifest {
    match o {
        Outcome::Committed(m, _) => *m,
        Outcome::Abandoned(why) => panic!("abandoned: {why}"),
    }
}

/// A namespace with two level-0 segments (folds of lsn 1 and 2).
async fn setup() -> (ManifestStore, Manifest, SegmentMeta, SegmentMeta) {
    let store: DynStore = Arc::new(MemoryStore::new());
    let ms = ManifestStore::new(store, Layout::new("c").unwrap());
    let (s1, s2) = (seg(1, 0, "a", "m", 1), seg(2, 0, "n", "z", 2));
    let m1 = committed(
        commit_change(&ms, Manifest::default(), &fold(0, s1.clone()), &opts())
            .await
            .unwrap(),
    )
    .await;
    let m2 = committed(
        commit_change(&ms, m1, &fold(1, s2.clone()), &opts())
            .await
            .unwrap(),
    )
    .await;
    (ms, m2, s1, s2)
}

#[tokio::test]
async fn fold_rebases_over_compaction_and_back() {
    let (ms, base, s1, s2) = setup().await;
    // Compaction wins version 3; a fold built on version 2 rebases to 4.
    committed(
        commit_change(&ms, base.clone(), &compact(&[&s1, &s2], 10), &opts())
            .await
            .unwrap(),
    )
    .await;
    let m = committed(
        commit_change(&ms, base.clone(), &fold(2, seg(3, 0, "b", "c", 3)), &opts())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(m.version, 4);
    let ids: Vec<u128> = m.segments.iter().map(|s| s.id).collect();
    assert_eq!(ids, [10, 3], "both changes are in");
    assert_eq!(m.last_applied_lsn, 3);
    m.check_accounting("m").unwrap();
}

#[tokio::test]
async fn a_second_fold_of_the_same_wal_is_abandoned() {
    let (ms, base, _, _) = setup().await;
    committed(
        commit_change(&ms, base.clone(), &fold(2, seg(3, 0, "a", "b", 3)), &opts())
            .await
            .unwrap(),
    )
    .await;
    let out = commit_change(&ms, base, &fold(2, seg(4, 0, "a", "b", 4)), &opts())
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Abandoned(why) if why.contains("another fold")));
    assert_eq!(
        ms.load_current().await.unwrap().unwrap().version,
        3,
        "nothing of it committed"
    );
}

#[tokio::test]
async fn compactions_rebase_when_disjoint_and_abandon_when_overlapping() {
    let (ms, base, s1, s2) = setup().await;
    committed(
        commit_change(&ms, base.clone(), &compact(&[&s1], 10), &opts())
            .await
            .unwrap(),
    )
    .await;
    // Disjoint inputs: rebases.
    let m = committed(
        commit_change(&ms, base.clone(), &compact(&[&s2], 11), &opts())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        m.segments.iter().map(|s| s.id).collect::<Vec<_>>(),
        [10, 11]
    );
    // Overlapping inputs (s1 is gone): abandoned.
    let out = commit_change(&ms, base, &compact(&[&s1, &s2], 12), &opts())
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Abandoned(why) if why.contains("replaced by another compaction"))
    );
}

/// The GC floor: a change based on a version below it may have had its
/// output collected, so it is abandoned however it would otherwise rebase;
/// a floor raise itself rebases over anything and never lowers the floor.
#[tokio::test]
async fn changes_based_below_the_gc_floor_are_abandoned() {
    let (ms, base, s1, _) = setup().await;
    assert_eq!(base.version, 2);
    let raised = committed(
        commit_change(&ms, base.clone(), &Change::RaiseFloor { floor: 2 }, &opts())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((raised.version, raised.gc_floor), (3, 2));
    // Based on version 2 = the floor: still commits (rebased over the raise).
    let older = ms.load(1).await.unwrap().unwrap();
    let ok = committed(
        commit_change(
            &ms,
            base.clone(),
            &fold(2, seg(2 << 64, 0, "x", "y", 7)),
            &opts(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(ok.gc_floor, 2);
    // Based on version 1, below the floor: abandoned.
    let out = commit_change(&ms, older, &compact(&[&s1], 1 << 64), &opts())
        .await
        .unwrap();
    assert!(
        matches!(&out, Outcome::Abandoned(why) if why.contains("floor")),
        "{out:?}"
    );
    // A stale raise to a lower floor keeps the higher one.
    let m = committed(
        commit_change(&ms, base, &Change::RaiseFloor { floor: 1 }, &opts())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(m.gc_floor, 2);
}

/// A change whose base is so old that GC collected the version after it:
/// its put-if-absent of that version number succeeds in the freed slot,
/// but it is off the chain, so it is reported abandoned, never committed.
#[tokio::test]
async fn a_commit_into_a_collected_version_slot_is_not_reported_committed() {
    let (ms, base, _, _) = setup().await;
    let v1 = ms.load(1).await.unwrap().unwrap();
    let raised = committed(
        commit_change(&ms, base, &Change::RaiseFloor { floor: 3 }, &opts())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(raised.gc_floor, 3);
    // GC deletes version 2 (below the floor).
    ms.store()
        .delete(&ms.layout().manifest_key(2))
        .await
        .unwrap();
    let out = commit_change(&ms, v1, &fold(1, seg(1 << 64, 0, "q", "r", 9)), &opts())
        .await
        .unwrap();
    assert!(
        matches!(&out, Outcome::Abandoned(why) if why.contains("not part of the chain")),
        "{out:?}"
    );
    assert_eq!(ms.load_current().await.unwrap().unwrap().version, 3);
}
