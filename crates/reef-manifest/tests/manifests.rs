//! Manifest commits, HEAD and roll-forward, on every backend; and a
//! property test of concurrent committers on the memory store.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use reef_format::{Head, Manifest};
use reef_manifest::store::{DynStore, MemoryStore};
use reef_manifest::{Error, Layout, ManifestStore};

/// One test scenario run against a fresh store.
type Scenario = fn(DynStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn manifest(version: u64) -> Manifest {
    Manifest {
        version,
        last_applied_lsn: version * 10,
        ..Manifest::default()
    }
}

/// A manifest only `actor` would write: real committers' manifests differ
/// (new segment ids, timestamps), which is what lets a committer recognise
/// its own earlier attempt by its bytes.
fn manifest_by(version: u64, actor: u64) -> Manifest {
    Manifest {
        created_at_ms: actor,
        ..manifest(version)
    }
}

fn ms(store: &DynStore) -> ManifestStore {
    ManifestStore::new(Arc::clone(store), Layout::new("ns1").unwrap())
}

async fn head_of(store: &DynStore) -> Option<u64> {
    let obj = store.get("ns/ns1/HEAD").await.unwrap()?;
    Some(Head::decode(&obj.bytes, "HEAD").unwrap().manifest_version)
}

async fn commit_load_conflict(store: &DynStore) {
    let m = ms(store);
    assert!(m.load_current().await.unwrap().is_none(), "empty namespace");
    let c = m.commit(&manifest(1)).await.unwrap();
    assert!(c.head_advanced);
    assert_eq!(m.load_current().await.unwrap().unwrap(), manifest(1));
    assert_eq!(head_of(store).await, Some(1));

    // A second committer of version 1 loses, and changes nothing.
    let mut rival = manifest(1);
    rival.last_applied_lsn = 999;
    assert!(matches!(
        m.commit(&rival).await,
        Err(Error::ManifestConflict { version: 1, .. })
    ));
    assert_eq!(m.load(1).await.unwrap().unwrap(), manifest(1));
}

async fn head_lags_and_never_moves_back(store: &DynStore) {
    let m = ms(store);
    m.commit(&manifest(1)).await.unwrap();
    // A committer that died after its manifest PUT, before moving HEAD.
    let key = m.layout().manifest_key(2);
    store
        .put_if_absent(&key, Bytes::from(manifest(2).encode().unwrap()))
        .await
        .unwrap();
    assert_eq!(head_of(store).await, Some(1));
    assert_eq!(
        m.load_current().await.unwrap().unwrap().version,
        2,
        "readers roll forward"
    );
    // The next committer moves HEAD past the gap; HEAD never goes back.
    m.commit(&manifest(3)).await.unwrap();
    assert_eq!(head_of(store).await, Some(3));
    assert!(!m.advance_head(2).await.unwrap());
    assert_eq!(head_of(store).await, Some(3));
}

async fn no_head_and_dangling_head(store: &DynStore) {
    let m = ms(store);
    // First committer died before writing HEAD at all.
    store
        .put_if_absent(
            &m.layout().manifest_key(1),
            Bytes::from(manifest(1).encode().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(m.load_current().await.unwrap().unwrap().version, 1);
    // HEAD naming a version that is gone (collected while HEAD lagged):
    // readers fall back to a LIST instead of failing forever.
    store
        .put(
            &m.layout().head_key(),
            Bytes::from(
                Head {
                    manifest_version: 7,
                }
                .encode()
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(m.load_current().await.unwrap().unwrap().version, 1);
    // HEAD with no manifest at all is damage, reported with the version.
    store.delete(&m.layout().manifest_key(1)).await.unwrap();
    let err = m.load_current().await.unwrap_err();
    assert!(
        matches!(err, Error::Inconsistent { .. }) && err.to_string().contains("manifest 7"),
        "{err}"
    );
}

/// An unreadable HEAD is a hint lost, not a namespace lost: the current
/// manifest is found by listing, the fence (`ensure_head_at_least`) still
/// holds, and the next commit replaces HEAD by CAS.
async fn unreadable_head_reads_as_the_newest_listed(store: &DynStore) {
    let m = ms(store);
    m.commit(&manifest(1)).await.unwrap();
    m.commit(&manifest(2)).await.unwrap();
    store
        .put(&m.layout().head_key(), Bytes::from_static(b"not a head"))
        .await
        .unwrap();
    assert_eq!(m.head_version().await.unwrap(), Some(2));
    assert_eq!(m.load_current().await.unwrap().unwrap().version, 2);
    m.ensure_head_at_least(2).await.unwrap();
    m.commit(&manifest(3)).await.unwrap();
    assert_eq!(head_of(store).await, Some(3), "the commit replaced HEAD");
}

/// A commit whose response was lost is retried and recognised as ours.
async fn lost_commit_response_is_not_a_conflict(store: &DynStore) {
    let m = ms(store);
    let key = m.layout().manifest_key(1);
    // The first attempt landed; its response never arrived.
    store
        .put_if_absent(&key, Bytes::from(manifest(1).encode().unwrap()))
        .await
        .unwrap();
    let c = m.commit(&manifest(1)).await.unwrap();
    assert_eq!(c.version, 1);
    assert_eq!(head_of(store).await, Some(1));
}

async fn manifest_key_and_content_must_agree(store: &DynStore) {
    let m = ms(store);
    store
        .put(
            &m.layout().manifest_key(5),
            Bytes::from(manifest(6).encode().unwrap()),
        )
        .await
        .unwrap();
    assert!(matches!(m.load(5).await, Err(Error::Inconsistent { .. })));
    store
        .put(&m.layout().manifest_key(8), Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let err = m.load(8).await.unwrap_err();
    assert!(
        matches!(err, Error::Format(_))
            && err.to_string().contains("manifest/00000000000000000008.mf"),
        "{err}"
    );
}

/// `actors` tasks each commit `each` versions, reloading after conflicts.
async fn concurrent_committers(store: &DynStore, actors: u64, each: u64) {
    let mut tasks = Vec::new();
    for actor in 0..actors {
        let m = ms(store);
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < each {
                let base = m.load_current().await.unwrap().map_or(0, |c| c.version);
                match m.commit(&manifest_by(base + 1, actor)).await {
                    Ok(_) => done += 1,
                    Err(Error::ManifestConflict { .. }) => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = ms(store);
    let versions = m.list_versions().await.unwrap();
    assert_eq!(
        versions,
        (1..=actors * each).collect::<Vec<_>>(),
        "gap-free history"
    );
    assert_eq!(
        head_of(store).await,
        Some(actors * each),
        "HEAD is the newest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifests_on_every_backend() {
    let scenarios: [Scenario; 7] = [
        |s| Box::pin(async move { commit_load_conflict(&s).await }),
        |s| Box::pin(async move { head_lags_and_never_moves_back(&s).await }),
        |s| Box::pin(async move { no_head_and_dangling_head(&s).await }),
        |s| Box::pin(async move { manifest_key_and_content_must_agree(&s).await }),
        |s| Box::pin(async move { concurrent_committers(&s, 8, 5).await }),
        |s| Box::pin(async move { lost_commit_response_is_not_a_conflict(&s).await }),
        |s| Box::pin(async move { unreadable_head_reads_as_the_newest_listed(&s).await }),
    ];
    for (i, scenario) in scenarios.iter().enumerate() {
        // A fresh set of empty backends per scenario.
        let backends = common::backends(&format!("manifests-{i}"));
        for (name, store) in &backends.stores {
            eprintln!("scenario {i} on {name}");
            scenario(Arc::clone(store)).await;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random interleavings (seeded yields between load and commit) of N
    /// committers give a gap-free version history with HEAD at the newest.
    #[test]
    fn random_interleavings_give_gap_free_history(seed in any::<u64>(), actors in 2u64..6, each in 1u64..6) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async move {
            let store: DynStore = Arc::new(MemoryStore::new());
            let mut tasks = Vec::new();
            for a in 0..actors {
                let m = ms(&store);
                let mut rng = seed ^ (a.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                tasks.push(tokio::spawn(async move {
                    let mut done = 0;
                    while done < each {
                        let base = m.load_current().await.unwrap().map_or(0, |c| c.version);
                        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        for _ in 0..(rng >> 61) {
                            tokio::task::yield_now().await;
                        }
                        match m.commit(&manifest_by(base + 1, a)).await {
                            Ok(_) => done += 1,
                            Err(Error::ManifestConflict { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let m = ms(&store);
            assert_eq!(m.list_versions().await.unwrap(), (1..=actors * each).collect::<Vec<_>>());
            assert_eq!(head_of(&store).await, Some(actors * each));
            assert_eq!(m.load_current().await.unwrap().unwrap().version, actors * each);
        });
    }
}
