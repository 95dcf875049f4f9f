//! Reusing deleted WAL objects' inodes in a local directory
//! (`store/spares/`, on by default): a deleted WAL object lends its
//! inode to a later put, and no reader ever gets the bytes of an object
//! other than the one it asked for.

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use reef_manifest::store::{LocalStore, ObjectStore};

fn wal(lsn: u64) -> String {
    format!("ns/n/wal/{lsn:020}.wal")
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// The offered spares in the pools (one per boot).
fn pool(dir: &Path) -> Vec<String> {
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d).map_or(Vec::new(), |d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
    };
    let wal = dir.join("ns/n/wal");
    names(&wal)
        .iter()
        .filter(|n| n.starts_with(".spare-"))
        .flat_map(|pool| names(&wal.join(pool)))
        .filter(|n| n.starts_with("s-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_wal_object_lends_its_inode_to_the_next_put() {
    let dir = common::TempDir::new("spares-reuse");
    let s = LocalStore::new(dir.path());
    s.put_if_absent(&wal(1), Bytes::from_static(b"first record"))
        .await
        .unwrap();
    let first = ino(&dir.path().join(wal(1)));
    s.delete_many(&[wal(1)]).await.unwrap();
    assert!(s.get(&wal(1)).await.unwrap().is_none());
    assert_eq!(pool(dir.path()).len(), 1);

    s.put_if_absent(&wal(2), Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(ino(&dir.path().join(wal(2))), first, "not reused");
    let got = s.get(&wal(2)).await.unwrap().unwrap();
    assert_eq!(&got.bytes[..], b"second", "the refill kept old bytes");
    assert!(pool(dir.path()).is_empty());
    let keys: Vec<String> = reef_manifest::store::list_all(&s, "ns/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, vec![wal(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_keys_and_stores_that_opt_out_unlink_as_before() {
    let dir = common::TempDir::new("spares-other");
    let s = LocalStore::new(dir.path());
    s.put_if_absent("ns/n/seg/1.seg", Bytes::from_static(b"segment"))
        .await
        .unwrap();
    s.delete_many(&["ns/n/seg/1.seg".to_owned()]).await.unwrap();
    assert!(!dir.path().join("ns/n/seg/.spare").exists());

    let off = LocalStore::new(dir.path()).with_recycling(false);
    off.put_if_absent(&wal(1), Bytes::from_static(b"record"))
        .await
        .unwrap();
    off.delete_many(&[wal(1)]).await.unwrap();
    assert!(pool(dir.path()).is_empty());
}

/// This boot's pool directory for the test namespace's WAL.
fn boot_pool(dir: &Path) -> std::path::PathBuf {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    dir.join(format!("ns/n/wal/.spare-{}", boot.trim()))
}

/// Once this boot has a pool in the key's directory, a read that cannot
/// take its shared lock while the key still names the inode meets a lock
/// no refill holds (refills lock only inodes no key names): it waits it
/// out, then reads the key's own bytes. Before there is a pool, no refill
/// can happen there, and reads take no lock. A store that does not
/// recycle reads the same way, since another process may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_lock_once_the_directory_has_a_pool_and_wait_out_a_foreign_lock() {
    let dir = common::TempDir::new("spares-foreign-lock");
    let s = LocalStore::new(dir.path()).with_recycling(false);
    s.put_if_absent(&wal(1), Bytes::from_static(b"record"))
        .await
        .unwrap();
    let other = File::open(dir.path().join(wal(1))).unwrap();
    other.try_lock().unwrap();
    // No pool: the lock is not even asked for.
    let got = s.get(&wal(1)).await.unwrap().unwrap();
    assert_eq!(&got.bytes[..], b"record");

    std::fs::create_dir(boot_pool(dir.path())).unwrap();
    let read = {
        let s = s.clone();
        tokio::spawn(async move { s.get(&wal(1)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!read.is_finished(), "the read did not wait for the lock");
    drop(other);
    let got = read.await.unwrap().unwrap().unwrap();
    assert_eq!(&got.bytes[..], b"record");
}

/// What a put of `lsn` writes: its own number throughout, so any other
/// object's bytes are caught.
fn record(lsn: u64) -> Bytes {
    Bytes::from(format!("<{lsn}>").repeat(64 + (lsn % 7) as usize * 50))
}

/// Puts and GC race readers of whole objects, ranges, heads and batches
/// cut by bytes: every
/// answer is the key's own object or "absent", and no read fails. A smoke
/// test of the whole (it catches a refill that keeps old bytes at once);
/// the narrow schedules, such as a reader that opened a key before GC
/// took it and locks after a refill, are driven one by one in
/// `store/spares/tests.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_racing_gc_and_refills_get_their_own_object_or_nothing() {
    const PUTS: u64 = 3_000;
    let dir = common::TempDir::new("spares-race");
    let s = Arc::new(LocalStore::new(dir.path()));
    let newest = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3u64)
        .map(|r| {
            let (s, newest, done) = (s.clone(), newest.clone(), done.clone());
            tokio::spawn(async move {
                let (mut x, mut found, mut absent) = (r + 1, 0u64, 0u64);
                while !done.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let lsn = newest.load(Ordering::Relaxed).saturating_sub(x % 40);
                    let want = record(lsn);
                    if x % 4 == 3 {
                        // A batch (the openat/fstatat path), cut by bytes:
                        // every answer is its own key's object or nothing.
                        let keys: Vec<String> = (lsn.saturating_sub(20)..=lsn).map(wal).collect();
                        let budget = 1 + x % (record(0).len() as u64 * 30);
                        let answers = s.get_many_within(&keys, budget).await;
                        assert!(!answers.is_empty() && answers.len() <= keys.len());
                        for (l, answer) in (lsn.saturating_sub(20)..=lsn).zip(answers) {
                            match answer.unwrap() {
                                Some(o) => assert_eq!(o.bytes, record(l), "batch read of {l}"),
                                None => absent += 1,
                            }
                            found += 1;
                        }
                        continue;
                    }
                    let got = match x % 4 {
                        0 => s.get(&wal(lsn)).await.unwrap().map(|o| o.bytes),
                        1 => match s.get_range(&wal(lsn), 0..want.len() as u64).await {
                            Ok(b) => Some(b),
                            Err(reef_manifest::Error::NotFound { .. }) => None,
                            Err(e) => panic!("get_range of {lsn}: {e}"),
                        },
                        _ => s
                            .head(&wal(lsn))
                            .await
                            .unwrap()
                            .map(|m| Bytes::from(vec![0; m.size as usize])),
                    };
                    match got {
                        Some(b) if x % 4 == 2 => assert_eq!(b.len(), want.len(), "head of {lsn}"),
                        Some(b) => assert_eq!(b, want, "the bytes read for {lsn}"),
                        None => absent += 1,
                    }
                    found += 1;
                }
                (found, absent)
            })
        })
        .collect();
    for lsn in 1..=PUTS {
        s.put_if_absent(&wal(lsn), record(lsn)).await.unwrap();
        newest.store(lsn, Ordering::Relaxed);
        if lsn % 8 == 0 && lsn > 24 {
            let old: Vec<String> = (lsn - 24..lsn - 16).map(wal).collect();
            s.delete_many(&old).await.unwrap();
        }
    }
    done.store(true, Ordering::Relaxed);
    let (mut reads, mut absent) = (0, 0);
    for r in readers {
        let (f, a) = r.await.unwrap();
        reads += f;
        absent += a;
    }
    assert!(
        reads > 1_000 && absent > 100,
        "reads {reads}, absent {absent}"
    );
    assert!(pool(dir.path()).len() <= 16, "{:?}", pool(dir.path()));
}

/// A directory where a WAL object is expected is no object, as for every
/// other key (the locked read answers as the plain one does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_at_a_wal_key_reads_as_absent() {
    let dir = common::TempDir::new("spares-dir-key");
    let s = LocalStore::new(dir.path());
    std::fs::create_dir_all(dir.path().join(wal(1))).unwrap();
    assert!(s.get(&wal(1)).await.unwrap().is_none());
    assert!(s.head(&wal(1)).await.unwrap().is_none());
}
