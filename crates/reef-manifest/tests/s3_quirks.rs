//! fusio 0.6.1's S3 quirks, pinned against a real (moto) server. Each test
//! asserts the quirk as it is today and how Reef's store avoids it; if a
//! fusio upgrade changes the behaviour, the test fails and points here.

mod common;

use bytes::Bytes;
use fusio::fs::Fs;
use fusio::path::Path;
use reef_manifest::store::{ObjectStore, list_all};

/// `AmazonS3::exists` answers the opposite. Reef never calls it: presence
/// is `head`.
#[tokio::test]
async fn exists_is_inverted_so_reef_uses_head() {
    let Some(server) = common::S3Server::start() else {
        return;
    };
    let store = server.store("quirk-exists");
    store
        .put("k/present", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let raw = store.client();
    assert!(
        !raw.exists(&Path::parse("quirk-exists/k/present").unwrap())
            .await
            .unwrap()
    );
    assert!(
        raw.exists(&Path::parse("quirk-exists/k/absent").unwrap())
            .await
            .unwrap()
    );
    assert!(store.head("k/present").await.unwrap().is_some());
    assert!(store.head("k/absent").await.unwrap().is_none());
}

/// `list` matches a bare prefix and strips a trailing `/`, so `wal` also
/// lists `walX/...`. Reef's `list` filters on the exact prefix.
#[tokio::test]
async fn bare_prefix_listing_is_filtered() {
    use futures_util::StreamExt;
    let Some(server) = common::S3Server::start() else {
        return;
    };
    let store = server.store("quirk-list");
    for k in ["wal/1", "walX/1", "wal.x"] {
        store.put(k, Bytes::from_static(b"x")).await.unwrap();
    }
    let raw = store.client();
    let listed: Vec<String> = raw
        .list(&Path::parse("quirk-list/wal/").unwrap())
        .await
        .unwrap()
        .map(|m| m.unwrap().path.to_string())
        .collect()
        .await;
    assert_eq!(
        listed.len(),
        3,
        "fusio lists every key starting with the bare stem: {listed:?}"
    );
    let ours: Vec<String> = list_all(&store, "wal/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(ours, ["wal/1"]);
}

/// The `&str` code path (conditional puts, get) resolves keys with
/// `Url::join`, the `Path` code path percent-encodes: a `%` sequence means
/// different keys on the two paths. Reef's key rules exclude such keys.
#[tokio::test]
async fn key_encoding_differs_between_code_paths() {
    let Some(server) = common::S3Server::start() else {
        return;
    };
    let store = server.store("quirk-keys");
    let raw = store.client();
    raw.put_if_none_match("quirk-keys/pct%41", Bytes::from_static(b"x"), None, None)
        .await
        .unwrap();
    assert!(
        raw.get_with_etag("quirk-keys/pctA")
            .await
            .unwrap()
            .is_some(),
        "%41 was decoded to A"
    );
    for bad in ["pct%41", "a+b", "a b", "q?x"] {
        assert!(
            store.put_if_absent(bad, Bytes::new()).await.is_err(),
            "{bad:?} must be refused"
        );
    }
}
