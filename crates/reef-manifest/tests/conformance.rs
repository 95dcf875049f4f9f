//! One conformance suite, run against every backend: each operation's
//! semantics, conditional-put races from many tasks, paging, bad keys.
//! (Races between processes on local disk: `local_processes.rs`.)

mod common;

use std::sync::Arc;

use bytes::Bytes;
use reef_manifest::Error;
use reef_manifest::store::{DynStore, LocalStore, MemoryStore, ObjectStore, PutOutcome, list_all};

async fn basic_semantics(s: &DynStore) {
    assert!(s.get("a/missing").await.unwrap().is_none());
    assert!(s.head("a/missing").await.unwrap().is_none());
    s.delete("a/missing").await.unwrap();

    s.put("a/one", Bytes::from_static(b"hello")).await.unwrap();
    let t1 = s.head("a/one").await.unwrap().unwrap().tag;
    let got = s.get("a/one").await.unwrap().unwrap();
    assert_eq!((got.bytes.as_ref(), &got.tag), (&b"hello"[..], &t1));
    let meta = s.head("a/one").await.unwrap().unwrap();
    assert_eq!((meta.size, &meta.tag), (5, &t1));

    // put replaces, and the tag changes with the content.
    s.put("a/one", Bytes::from_static(b"world!")).await.unwrap();
    let t2 = s.head("a/one").await.unwrap().unwrap().tag;
    assert_ne!(t1, t2);
    assert_eq!(
        s.get("a/one").await.unwrap().unwrap().bytes.as_ref(),
        b"world!"
    );

    s.delete("a/one").await.unwrap();
    assert!(s.get("a/one").await.unwrap().is_none());

    // Every size around a reader's first buffer (the local backend reads
    // 16 KiB before it asks a file's size) comes back whole, alone and in
    // a batch.
    let sizes = [0usize, 1, 16383, 16384, 16385, 100_000];
    let keys: Vec<String> = sizes.iter().map(|n| format!("a/size-{n}")).collect();
    let body = |n: usize| Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for (key, &n) in keys.iter().zip(&sizes) {
        s.put(key, body(n)).await.unwrap();
        assert_eq!(s.get(key).await.unwrap().unwrap().bytes, body(n), "{key}");
    }
    for ((key, &n), got) in keys.iter().zip(&sizes).zip(s.get_many(&keys).await) {
        assert_eq!(got.unwrap().unwrap().bytes, body(n), "{key}");
        s.delete(key).await.unwrap();
    }
}

async fn conditional_puts(s: &DynStore) {
    let first = s
        .put_if_absent("c/k", Bytes::from_static(b"v1"))
        .await
        .unwrap();
    let PutOutcome::Written(tag1) = first else {
        panic!("first put_if_absent lost")
    };
    let second = s
        .put_if_absent("c/k", Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert_eq!(second, PutOutcome::ConditionFailed);
    assert_eq!(
        s.get("c/k").await.unwrap().unwrap().bytes.as_ref(),
        b"v1",
        "loser wrote nothing"
    );

    // A put then a get, as one call: the get sees the store after the put
    // (here, the put's own object), whether the put won or lost, and a
    // missing object reads as `None`.
    let (won, read) = s
        .put_if_absent_then_get("c/w1", Bytes::from_static(b"w"), "c/w1")
        .await
        .unwrap();
    assert!(matches!(won, PutOutcome::Written(_)));
    assert_eq!(read.unwrap().bytes.as_ref(), b"w");
    let (lost, read) = s
        .put_if_absent_then_get("c/w1", Bytes::from_static(b"x"), "c/k")
        .await
        .unwrap();
    assert_eq!(lost, PutOutcome::ConditionFailed);
    assert_eq!(read.unwrap().bytes.as_ref(), b"v1");
    let (_, read) = s
        .put_if_absent_then_get("c/w2", Bytes::from_static(b"w"), "c/none")
        .await
        .unwrap();
    assert!(read.is_none());
    assert_eq!(s.get("c/w1").await.unwrap().unwrap().bytes.as_ref(), b"w");
    let bad = s
        .put_if_absent_then_get("c/w3", Bytes::from_static(b"w"), "bad key")
        .await;
    assert!(matches!(bad, Err(Error::InvalidKey { .. })), "{bad:?}");
    assert!(s.get("c/w3").await.unwrap().is_none(), "nothing written");
    s.delete("c/w1").await.unwrap();
    s.delete("c/w2").await.unwrap();

    let PutOutcome::Written(tag2) = s
        .put_if_match("c/k", Bytes::from_static(b"v3"), &tag1)
        .await
        .unwrap()
    else {
        panic!("CAS with the current tag failed")
    };
    let stale = s
        .put_if_match("c/k", Bytes::from_static(b"v4"), &tag1)
        .await
        .unwrap();
    assert_eq!(
        stale,
        PutOutcome::ConditionFailed,
        "CAS with a stale tag must fail"
    );
    assert_eq!(s.get("c/k").await.unwrap().unwrap().bytes.as_ref(), b"v3");
    assert_eq!(s.get("c/k").await.unwrap().unwrap().tag, tag2);

    // If-Match on a missing key is a lost race, not an error (S3: 404).
    let missing = s
        .put_if_match("c/none", Bytes::from_static(b"x"), &tag2)
        .await
        .unwrap();
    assert_eq!(missing, PutOutcome::ConditionFailed);
    assert!(s.get("c/none").await.unwrap().is_none());
}

async fn ranges(s: &DynStore) {
    let data: Vec<u8> = (0..=255u8).collect();
    s.put("r/obj", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(
        s.get_range("r/obj", 10..20).await.unwrap().as_ref(),
        &data[10..20]
    );
    assert_eq!(
        s.get_range("r/obj", 0..256).await.unwrap().as_ref(),
        &data[..]
    );
    assert!(matches!(
        s.get_range("r/obj", 200..300).await,
        Err(Error::RangeOutOfBounds { size: 256, .. })
    ));
    assert!(matches!(
        s.get_range("r/missing", 0..1).await,
        Err(Error::NotFound { .. })
    ));
    // get_range_sized: the same bytes, and the whole object's size.
    let (part, size) = s.get_range_sized("r/obj", 250..256).await.unwrap();
    assert_eq!((part.as_ref(), size), (&data[250..], 256));
    let (part, size) = s.get_range_sized("r/obj", 10..20).await.unwrap();
    assert_eq!((part.as_ref(), size), (&data[10..20], 256));
    let (part, size) = s.get_range_sized("r/obj", 256..256).await.unwrap();
    assert_eq!((part.len(), size), (0, 256));
    assert!(matches!(
        s.get_range_sized("r/obj", 200..300).await,
        Err(Error::RangeOutOfBounds { size: 256, .. })
    ));
    assert!(matches!(
        s.get_range_sized("r/obj", 257..260).await,
        Err(Error::RangeOutOfBounds { size: 256, .. })
    ));
    assert!(matches!(
        s.get_range_sized("r/missing", 0..1).await,
        Err(Error::NotFound { .. })
    ));
}

async fn listing(s: &DynStore) {
    // "l/b-x" sorts before "l/b/1" ('-' < '/'): a lister that walks
    // directories must order "b/" and "b-x" as keys, not as names.
    for k in ["l/b/2", "l/a", "l/b/1", "lX/nope", "l/c", "l/b-x"] {
        s.put(k, Bytes::from(k.as_bytes().to_vec())).await.unwrap();
    }
    // One level of names below a prefix: each once, sorted, only under
    // that exact prefix ("lX/" is another), not the plain keys beside them.
    for k in ["l/d/z/1", "l/d/y", "l/e-1/x"] {
        s.put(k, Bytes::from_static(b"n")).await.unwrap();
    }
    assert_eq!(s.list_dirs("l/").await.unwrap(), ["b", "d", "e-1"]);
    assert_eq!(s.list_dirs("l/d/").await.unwrap(), ["z"]);
    assert!(s.list_dirs("none/").await.unwrap().is_empty());
    for k in ["l/d/z/1", "l/d/y", "l/e-1/x"] {
        s.delete(k).await.unwrap();
    }
    let keys: Vec<String> = list_all(s.as_ref(), "l/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        keys,
        ["l/a", "l/b-x", "l/b/1", "l/b/2", "l/c"],
        "sorted, prefix-exact with a trailing '/'"
    );
    let sizes: Vec<u64> = list_all(s.as_ref(), "l/b/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.size)
        .collect();
    assert_eq!(sizes, [5, 5]);

    // Paging one at a time visits everything once, in order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list("l/", after.as_deref(), 1).await.unwrap();
        assert!(page.objects.len() <= 1);
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, keys);
    // Keys only: the same keys, page by page.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list_keys("l/", after.as_deref(), 2).await.unwrap();
        assert!(page.keys.len() <= 2);
        seen.extend(page.keys);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, keys);
    let one = s.list_keys("l/b/", None, 1000).await.unwrap();
    assert_eq!(one.keys, ["l/b/1", "l/b/2"]);
    assert_eq!(one.next, None);
    assert!(list_all(s.as_ref(), "nothing/").await.unwrap().is_empty());
    // `any_under` agrees with a listing of one key, prefixes that end
    // inside a name included; what deletes left behind ("l/d/": empty
    // directories on a local disk) holds nothing.
    for prefix in ["l/", "l/b", "l/b/", "l/b-", "l/b/2", "lX/", "l", ""] {
        assert!(s.any_under(prefix).await.unwrap(), "{prefix}");
    }
    for prefix in ["l/d/", "l/d", "l/e", "l/b/3", "l/z", "nothing/", "lY"] {
        assert!(!s.any_under(prefix).await.unwrap(), "{prefix}");
    }
    assert!(s.any_under("../l/").await.is_err());
    assert!(
        s.list_keys("nothing/", None, 10)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
}

async fn bad_keys_write_nothing(s: &DynStore) {
    for key in [
        "",
        "/abs",
        "x//y",
        "has space",
        "q?x",
        "x/.hidden",
        "../escape",
    ] {
        let err = s.put(key, Bytes::from_static(b"x")).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err}");
        assert!(s.put_if_absent(key, Bytes::new()).await.is_err());
    }
    assert!(
        list_all(s.as_ref(), "")
            .await
            .unwrap()
            .iter()
            .all(|o| !o.key.contains(' '))
    );
}

async fn put_if_absent_race(s: &DynStore) {
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            s.put_if_absent("race/once", Bytes::from(i.to_le_bytes().to_vec()))
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let PutOutcome::Written(_) = t.await.unwrap() {
            winners.push(i as u32);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one put_if_absent wins");
    let stored = s.get("race/once").await.unwrap().unwrap().bytes;
    assert_eq!(
        stored.as_ref(),
        winners[0].to_le_bytes(),
        "the winner's bytes are stored"
    );
}

/// 16 tasks CAS one object from the same tag at once: exactly one wins,
/// and the stored bytes are the winner's.
async fn if_match_race(s: &DynStore) {
    s.put("race/cas", Bytes::from_static(b"start"))
        .await
        .unwrap();
    let tag = s.get("race/cas").await.unwrap().unwrap().tag;
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let (s, tag) = (Arc::clone(s), tag.clone());
        tasks.push(tokio::spawn(async move {
            s.put_if_match("race/cas", Bytes::from(format!("writer {i}")), &tag)
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let PutOutcome::Written(_) = t.await.unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one CAS from one tag wins: {winners:?}"
    );
    let stored = s.get("race/cas").await.unwrap().unwrap().bytes;
    assert_eq!(
        stored,
        format!("writer {}", winners[0]),
        "the winner's bytes are stored"
    );
}

/// A counter incremented by CAS from many tasks (8 × 15): linearizable
/// only if no two CASes with the same tag both succeed. Each write carries
/// its writer and attempt, as Reef's own conditional writes carry a nonce:
/// a server that leaves an outcome unknown (RGW answers some losers 500)
/// is settled by reading the bytes back, which must be unambiguous.
async fn cas_counter_race(s: &DynStore) {
    s.put("race/counter", Bytes::from_static(b"0"))
        .await
        .unwrap();
    let (tasks_n, per_task) = (8u64, 15u64);
    let mut tasks = Vec::new();
    for task in 0..tasks_n {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            let (mut done, mut attempt) = (0, 0u64);
            while done < per_task {
                attempt += 1;
                let cur = s.get("race/counter").await.unwrap().unwrap();
                let text = std::str::from_utf8(&cur.bytes).unwrap();
                let n: u64 = text.split(' ').next().unwrap().parse().unwrap();
                let next = Bytes::from(format!("{} {task} {attempt}", n + 1));
                match s
                    .put_if_match("race/counter", next.clone(), &cur.tag)
                    .await
                    .unwrap()
                {
                    PutOutcome::Written(_) => done += 1,
                    // Lost, or landed with its answer lost (a 5xx): the
                    // bytes say which, as Reef's callers read them.
                    PutOutcome::ConditionFailed => {
                        let now = s.get("race/counter").await.unwrap().unwrap();
                        if now.bytes == next {
                            done += 1;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let bytes = s.get("race/counter").await.unwrap().unwrap().bytes;
    let text = std::str::from_utf8(&bytes).unwrap();
    let n: u64 = text.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(n, tasks_n * per_task, "increments lost or doubled");
}

async fn large_object(s: &DynStore) {
    // Past S3 multipart thresholds (fusio starts multipart at 5 MiB).
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    s.put("big/obj", Bytes::from(big.clone())).await.unwrap();
    let got = s.get("big/obj").await.unwrap().unwrap();
    assert_eq!(got.bytes.len(), big.len());
    assert!(got.bytes == big);
    let PutOutcome::Written(_) = s.put_if_absent("big/once", Bytes::from(big)).await.unwrap()
    else {
        panic!("conditional put of a large object failed")
    };
}

/// `get_many` answers exactly what `get` of each key would, in order,
/// missing keys included; a bad key is refused; a page is never larger
/// than the backend's `list_page_max`.
async fn batches(s: &DynStore) {
    for k in ["m/1", "m/3"] {
        s.put(k, Bytes::from(k.as_bytes().to_vec())).await.unwrap();
    }
    let keys: Vec<String> = ["m/1", "m/2", "m/3"].map(str::to_owned).to_vec();
    let many = s.get_many(&keys).await;
    assert_eq!(many.len(), 3);
    let bytes = |o: &Option<reef_manifest::store::Object>| o.as_ref().map(|o| o.bytes.clone());
    for (key, got) in keys.iter().zip(&many) {
        let one = s.get(key).await.unwrap();
        assert_eq!(bytes(got.as_ref().unwrap()), bytes(&one), "{key}");
    }
    assert!(many[1].as_ref().unwrap().is_none());
    assert!(s.get_many(&[]).await.is_empty());
    // A bad key is that key's answer; the others are still read.
    let mixed = s
        .get_many(&["m/1".to_owned(), "../escape".to_owned()])
        .await;
    assert!(mixed[0].as_ref().unwrap().is_some());
    assert!(mixed[1].is_err());
    // `get_many_within`: a prefix of `get_many`'s answers, at least one,
    // none past the one that reaches the budget (absences count nothing).
    for k in 1..=6 {
        s.put(&format!("w/{k}"), Bytes::from(vec![b'w'; 10]))
            .await
            .unwrap();
    }
    let keys: Vec<String> = ["w/1", "w/2", "w/none", "w/3", "w/4", "w/5", "w/6"]
        .map(str::to_owned)
        .to_vec();
    let all = s.get_many_within(&keys, u64::MAX).await;
    assert_eq!(all.len(), keys.len());
    for budget in [0, 1, 10, 11, 25, 30, 45, 60, 61] {
        let some = s.get_many_within(&keys, budget).await;
        assert!(!some.is_empty() && some.len() <= keys.len(), "{budget}");
        let sizes: Vec<u64> = some
            .iter()
            .map(|a| {
                a.as_ref()
                    .unwrap()
                    .as_ref()
                    .map_or(0, |o| o.bytes.len() as u64)
            })
            .collect();
        let before_last: u64 = sizes[..sizes.len() - 1].iter().sum();
        assert!(
            before_last < budget || sizes.len() == 1,
            "{budget}: {sizes:?}"
        );
        for (got, want) in some.iter().zip(&all) {
            assert_eq!(
                bytes(got.as_ref().unwrap()),
                bytes(want.as_ref().unwrap()),
                "{budget}"
            );
        }
    }
    assert!(s.get_many_within(&[], 10).await.is_empty());
    let max = s.list_page_max();
    assert!(max >= 1000, "{max}");
    let page = s.list("m/", None, usize::MAX).await.unwrap();
    assert!(page.objects.len() <= max);
}

/// `delete_many` deletes what `delete` of each key would, across
/// directories, missing keys included; a bad key stops the batch there.
async fn batch_deletes(s: &DynStore) {
    let kept = ["x/a/keep", "x/b/keep"];
    let gone = ["x/a/1", "x/a/2", "x/b/1", "x/a/3"];
    for k in kept.iter().chain(&gone) {
        s.put(k, Bytes::from_static(b"v")).await.unwrap();
    }
    let mut keys: Vec<String> = gone.map(str::to_owned).to_vec();
    keys.insert(2, "x/a/missing".to_owned());
    s.delete_many(&keys).await.unwrap();
    for k in gone {
        assert!(s.get(k).await.unwrap().is_none(), "{k} was not deleted");
    }
    for k in kept {
        assert!(s.get(k).await.unwrap().is_some(), "{k} was deleted");
    }
    s.delete_many(&[]).await.unwrap();
    // Deleting what is already gone succeeds (a retried batch).
    s.delete_many(&keys).await.unwrap();
    // A bad key stops the batch there: the keys before it are deleted,
    // the keys after it are not.
    let bad = ["x/b/keep", "../escape", "x/a/keep"].map(str::to_owned);
    assert!(s.delete_many(&bad).await.is_err());
    assert!(s.get("x/b/keep").await.unwrap().is_none());
    assert!(s.get("x/a/keep").await.unwrap().is_some());
}

async fn suite(s: DynStore) {
    batches(&s).await;
    batch_deletes(&s).await;
    basic_semantics(&s).await;
    conditional_puts(&s).await;
    ranges(&s).await;
    listing(&s).await;
    bad_keys_write_nothing(&s).await;
    put_if_absent_race(&s).await;
    if_match_race(&s).await;
    cas_counter_race(&s).await;
    large_object(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend_conforms() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_backend_conforms() {
    let dir = common::TempDir::new("conformance");
    suite(Arc::new(LocalStore::new(dir.path()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_backend_hides_temporary_files() {
    let dir = common::TempDir::new("tmpfiles");
    let s = LocalStore::new(dir.path());
    s.put("t/a", Bytes::from_static(b"x")).await.unwrap();
    // What a crash between writing and publishing leaves behind.
    std::fs::write(dir.path().join("t/.tmp-999-0"), b"partial").unwrap();
    let keys: Vec<String> = list_all(&s, "t/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["t/a"]);
}

/// A put that fails after its temporary file was written (here: the key
/// names a non-empty directory, so publishing fails) leaves no `.tmp-*`
/// file behind; nothing else would ever remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_failed_put_leaves_no_temporary_file() {
    let dir = common::TempDir::new("tmpleft");
    let s = LocalStore::new(dir.path());
    std::fs::create_dir_all(dir.path().join("t/x")).unwrap();
    std::fs::write(dir.path().join("t/x/y"), b"in the way").unwrap();
    assert!(s.put("t/x", Bytes::from_static(b"v")).await.is_err());
    let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend_conforms() {
    let Some(server) = common::S3Server::start() else {
        return;
    };
    suite(Arc::new(server.store("conformance"))).await;
}

/// A key prefix in the URL keeps two stores on one bucket apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefixes_isolate_stores() {
    let Some(server) = common::S3Server::start() else {
        return;
    };
    let (a, b) = (server.store("tenant-a"), server.store("tenant-b"));
    a.put("k/x", Bytes::from_static(b"a")).await.unwrap();
    assert!(b.get("k/x").await.unwrap().is_none());
    assert_eq!(list_all(&a, "k/").await.unwrap().len(), 1);
    assert!(list_all(&b, "").await.unwrap().is_empty());
}

/// A wrong secret is a clear, non-transient error that says the server
/// refused the credentials, and never shows the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_secret_is_a_clear_auth_error() {
    let Some(server) = common::S3Server::start() else {
        return;
    };
    if server.kind() == "moto" {
        eprintln!("SKIPPING: moto does not check signatures (CI runs this on Ceph RGW)");
        return;
    }
    let store = server.store_with_secret("auth", "not-the-secret-9f3a");
    let err = store
        .put("k/x", Bytes::from_static(b"x"))
        .await
        .expect_err("a wrong secret must be refused");
    let msg = err.to_string();
    assert!(!err.is_transient(), "{msg}");
    assert!(msg.contains("credentials"), "{msg}");
    assert!(!msg.contains("not-the-secret-9f3a"), "{msg}");
    let err = store.get("k/x").await.expect_err("reads too");
    assert!(err.to_string().contains("credentials"), "{err}");
}
