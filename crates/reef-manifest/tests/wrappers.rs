//! The counting and fault-injecting wrappers do what they promise: counts
//! are exact per kind; faults are deterministic per seed, "crash before"
//! leaves the bucket untouched, "crash after" leaves the effect, and a lost
//! response is transient but took effect.

use std::sync::Arc;

use bytes::Bytes;
use reef_manifest::Error;
use reef_manifest::store::{
    CountingStore, FaultPlan, FaultyStore, MemoryStore, ObjectStore, PutOutcome,
};

#[tokio::test]
async fn counting_store_counts_every_kind_and_byte() {
    let s = CountingStore::new(MemoryStore::new());
    s.put("a/1", Bytes::from_static(b"12345")).await.unwrap();
    s.put_if_absent("a/2", Bytes::from_static(b"12"))
        .await
        .unwrap();
    let tag = s.head("a/2").await.unwrap().unwrap().tag;
    s.put_if_match("a/2", Bytes::from_static(b"123"), &tag)
        .await
        .unwrap();
    s.get("a/1").await.unwrap();
    s.get_range("a/1", 1..3).await.unwrap();
    s.list("a/", None, 10).await.unwrap();
    s.delete("a/1").await.unwrap();
    let c = s.counts();
    assert_eq!(
        (
            c.put,
            c.put_if_absent,
            c.put_if_match,
            c.head,
            c.get,
            c.get_range,
            c.list,
            c.delete
        ),
        (1, 1, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!((c.bytes_written, c.bytes_read), (5 + 2 + 3, 5 + 2));
    assert_eq!(c.requests(), 8);
    let before = c;
    s.get("a/2").await.unwrap();
    assert_eq!(s.counts().since(&before).get, 1);
}

#[tokio::test]
async fn crash_before_leaves_nothing_crash_after_leaves_the_effect() {
    let inner = MemoryStore::new();
    let before = FaultyStore::new(
        inner.clone(),
        FaultPlan {
            crash_before_op: Some(1),
            ..FaultPlan::default()
        },
    );
    before.put("k/0", Bytes::from_static(b"x")).await.unwrap();
    let err = before
        .put_if_absent("k/1", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Injected {
            transient: false,
            ..
        }
    ));
    assert!(before.crashed());
    assert!(
        before.get("k/0").await.is_err(),
        "everything fails after the crash"
    );
    assert!(
        inner.get("k/1").await.unwrap().is_none(),
        "the crashed op never happened"
    );

    let after = FaultyStore::new(
        inner.clone(),
        FaultPlan {
            crash_after_op: Some(0),
            ..FaultPlan::default()
        },
    );
    assert!(
        after
            .put_if_absent("k/2", Bytes::from_static(b"y"))
            .await
            .is_err()
    );
    assert!(
        inner.get("k/2").await.unwrap().is_some(),
        "the op took effect before the crash"
    );
}

#[tokio::test]
async fn lost_responses_took_effect_and_are_transient() {
    let inner = MemoryStore::new();
    let s = FaultyStore::new(
        inner.clone(),
        FaultPlan {
            seed: 1,
            lost_response_rate: 1.0,
            ..FaultPlan::default()
        },
    );
    let err = s
        .put_if_absent("k/x", Bytes::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    // The retry finds the key taken: reading it back tells ours from theirs.
    let retry = inner
        .put_if_absent("k/x", Bytes::from_static(b"v"))
        .await
        .unwrap();
    assert_eq!(retry, PutOutcome::ConditionFailed);
    assert_eq!(
        inner.get("k/x").await.unwrap().unwrap().bytes.as_ref(),
        b"v"
    );
}

async fn fault_pattern(seed: u64) -> Vec<bool> {
    let s = Arc::new(FaultyStore::new(
        MemoryStore::new(),
        FaultPlan {
            seed,
            transient_rate: 0.3,
            ..FaultPlan::default()
        },
    ));
    let mut out = Vec::new();
    for i in 0..64 {
        out.push(s.put(&format!("k/{i}"), Bytes::new()).await.is_err());
    }
    out
}

#[tokio::test]
async fn faults_are_deterministic_per_seed() {
    let a = fault_pattern(42).await;
    assert_eq!(a, fault_pattern(42).await);
    assert_ne!(a, fault_pattern(43).await);
    let failures = a.iter().filter(|f| **f).count();
    assert!(
        (5..=35).contains(&failures),
        "~30% of 64 fail, got {failures}"
    );
}

/// A batch read through `RetryingStore` retries each key that failed
/// transiently on its own: with a third of requests failing, every key of
/// a 64-key batch is still answered. (Retrying the whole batch, as first
/// written, would almost never see 64 successes at once: found in review.)
#[tokio::test]
async fn a_batch_read_retries_each_failed_key_alone() {
    let inner = MemoryStore::new();
    let keys: Vec<String> = (0..64).map(|i| format!("b/{i:02}")).collect();
    for k in &keys {
        inner.put(k, Bytes::from(k.clone())).await.unwrap();
    }
    let faulty = FaultyStore::new(
        inner,
        FaultPlan {
            seed: 7,
            transient_rate: 0.33,
            ..FaultPlan::default()
        },
    );
    let retrying =
        reef_manifest::store::RetryingStore::new(faulty, 20, std::time::Duration::from_micros(1));
    let answers = retrying.get_many(&keys).await;
    assert_eq!(answers.len(), 64);
    for (k, a) in keys.iter().zip(answers) {
        let got = a.unwrap_or_else(|e| panic!("{k}: {e}")).unwrap();
        assert_eq!(got.bytes, Bytes::from(k.clone()));
    }
}
