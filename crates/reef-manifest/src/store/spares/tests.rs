//! The spare pool's invariants, each driven through the schedule that
//! would break it (`spares/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::super::local::{LocalStore, read_file};
use super::read::{Name, read_locked, read_opened, read_wal, read_wal_batch};
use super::*;
use crate::testing::TempDir;

/// A store in a fresh directory that has put WAL there, its WAL
/// directory, and this boot's pool in it.
fn store(tag: &str) -> (TempDir, LocalStore, PathBuf, PathBuf) {
    let tmp = TempDir::new(tag);
    let s = LocalStore::new(tmp.path());
    let wal = tmp.path().join("ns/n/wal");
    fs::create_dir_all(&wal).unwrap();
    wrote(&wal);
    let pool = pool_of(&wal).expect("a boot id (Linux)");
    (tmp, s, wal, pool)
}

fn key(lsn: u64) -> String {
    format!("ns/n/wal/{lsn:020}.wal")
}

fn file(lsn: u64) -> String {
    format!("{lsn:020}.wal")
}

/// A WAL object as a put leaves it.
fn put(wal: &Path, lsn: u64, bytes: &[u8]) -> PathBuf {
    let path = wal.join(file(lsn));
    fs::write(&path, bytes).unwrap();
    path
}

/// GC's run, as the store does it (`delete_many`).
fn gc(s: &LocalStore, lsns: &[u64]) {
    let keys: Vec<String> = lsns.iter().map(|&l| key(l)).collect();
    s.remove_all(&keys).unwrap();
}

fn names(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Until its directory is synced, a retired object's key may come back
/// after a power loss: refilling it then would put another object's bytes
/// under that key. Nothing is claimable before `offer`; the spare keeps
/// its blocks, and a refill leaves exactly the new object.
#[test]
fn a_retired_object_is_offered_only_after_its_directory_is_synced() {
    let (_tmp, _s, wal, pool) = store("spares-offer");
    let old = put(&wal, 1, &[7; 100_000]);
    let mut run = Retiring::begin(&wal);
    run.retire(&old).unwrap();
    assert!(!old.exists());
    assert!(
        refill(&wal, b"new").unwrap().is_none(),
        "a spare was claimed before its key's removal was durable"
    );
    sync_dir(&wal).unwrap();
    run.offer();
    let offered = names(&pool, OFFERED_PREFIX);
    assert_eq!(offered.len(), 1);
    let len = fs::metadata(pool.join(&offered[0])).unwrap().len();
    assert_eq!(
        len, 100_000,
        "an offered spare within the budget was emptied"
    );
    let spare = refill(&wal, b"new").unwrap().expect("the offered spare");
    assert_eq!(
        fs::read(&spare).unwrap(),
        b"new",
        "the old object's tail stayed"
    );
}

/// A WAL object of `len` bytes that holds no blocks (the budget counts
/// lengths).
fn put_sparse(wal: &Path, lsn: u64, len: u64) {
    File::create(wal.join(file(lsn)))
        .and_then(|f| f.set_len(len))
        .unwrap();
}

/// The lengths of the offered spares in `pool`.
fn offered_lens(pool: &Path) -> Vec<u64> {
    let mut lens: Vec<u64> = names(pool, OFFERED_PREFIX)
        .iter()
        .map(|n| fs::metadata(pool.join(n)).unwrap().len())
        .collect();
    lens.sort();
    lens
}

/// A process's spares keep at most `KEPT_BYTES_MAX` in all (what a reboot
/// can leave in the pool): past it a spare is offered empty. Refilling
/// gives its bytes back to the budget.
#[test]
fn spares_keep_at_most_the_budget() {
    let (_tmp, s, wal, pool) = store("spares-budget");
    let half = KEPT_BYTES_MAX / 2 + 1;
    put_sparse(&wal, 1, half);
    put_sparse(&wal, 2, half);
    gc(&s, &[1, 2]);
    assert_eq!(offered_lens(&pool), [0, half], "the budget was overrun");

    for lsn in [4, 5] {
        let spare = refill(&wal, b"new").unwrap().expect("a spare");
        // As a put does: linked under its key, the pool name dropped.
        fs::hard_link(&spare, wal.join(file(lsn))).unwrap();
        fs::remove_file(spare).unwrap();
    }
    put_sparse(&wal, 3, half);
    gc(&s, &[3]);
    assert_eq!(
        offered_lens(&pool),
        [half],
        "refilled spares still counted against the budget"
    );
}

/// The whole path through the store: GC retires, a put reuses the inode.
#[test]
fn gc_then_a_put_reuses_the_inode() {
    let (_tmp, s, wal, pool) = store("spares-path");
    let ino = fs::metadata(put(&wal, 1, b"old")).unwrap().ino();
    gc(&s, &[1]);
    assert_eq!(names(&pool, OFFERED_PREFIX).len(), 1);
    let spare = refill(&wal, b"new").unwrap().expect("a spare");
    assert_eq!(fs::metadata(&spare).unwrap().ino(), ino);
}

/// A process that never put WAL in a directory (a GC-only compactor)
/// unlinks there: its spares would fill a pool nobody draws from.
#[test]
fn a_process_that_never_wrote_here_does_not_recycle() {
    let tmp = TempDir::new("spares-gc-only");
    let s = LocalStore::new(tmp.path());
    let wal = tmp.path().join("ns/n/wal");
    fs::create_dir_all(&wal).unwrap();
    put(&wal, 1, b"old");
    gc(&s, &[1]);
    assert!(!pool_of(&wal).unwrap().exists());
}

/// GC takes WAL object 1 into the pool, and a put of object 2 ("new
/// record") refills its inode: the schedule the reader tests race.
fn gc_then_refill_as_2(s: &LocalStore, wal: &Path) {
    gc(s, &[1]);
    let spare = refill(wal, b"new record").unwrap().expect("a spare");
    fs::hard_link(&spare, wal.join(file(2))).unwrap();
    fs::remove_file(&spare).unwrap();
}

/// A reader that opened an object before GC took it, and locks only after
/// its inode was refilled with another object, must answer "absent".
#[test]
fn a_reader_that_opened_before_gc_never_gets_the_next_objects_bytes() {
    let (_tmp, s, wal, _pool) = store("spares-reader-name");
    let old = put(&wal, 1, b"old record");
    let opened = File::open(&old).unwrap();

    gc_then_refill_as_2(&s, &wal);
    let same = fs::metadata(wal.join(file(2))).unwrap().ino();
    assert_eq!(opened.metadata().unwrap().ino(), same);

    let mut read = |f: &mut File| read_file(f);
    assert!(
        read_opened(Name::path(&old), opened, &mut read)
            .unwrap()
            .is_none(),
        "the stale reader's answer counted"
    );
    assert!(read_locked(Name::path(&old), &mut read).unwrap().is_none());
    let new = read_locked(Name::path(&wal.join(file(2))), &mut read).unwrap();
    assert_eq!(new.unwrap(), b"new record");
}

/// The same schedule, the reader opening and checking the key by its
/// name in the directory it holds open (how a batch reads).
#[test]
fn a_reader_by_name_in_its_directory_never_gets_the_next_objects_bytes() {
    let (_tmp, s, wal, _pool) = store("spares-reader-at");
    let dir = rustix::fs::open(
        &wal,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let old = put(&wal, 1, b"old record");
    let opened = File::open(&old).unwrap();

    gc_then_refill_as_2(&s, &wal);

    let mut read = |f: &mut File| read_file(f);
    assert!(
        read_opened(Name::in_dir(&old, &dir), opened, &mut read)
            .unwrap()
            .is_none(),
        "the stale reader's answer counted"
    );
    assert!(
        read_locked(Name::in_dir(&old, &dir), &mut read)
            .unwrap()
            .is_none()
    );
    let new = wal.join(file(2));
    let got = read_locked(Name::in_dir(&new, &dir), &mut read).unwrap();
    assert_eq!(got.unwrap(), b"new record");
}

/// A reader holding the object when a put would refill its spare keeps
/// it: the spare waits, and is refilled once the reader is done.
#[test]
fn a_spare_a_reader_holds_waits_for_the_reader() {
    let (_tmp, s, wal, pool) = store("spares-reader-lock");
    let old = put(&wal, 1, b"old record");
    let mut reader = File::open(&old).unwrap();
    reader.lock_shared().unwrap();
    gc(&s, &[1]);

    assert!(refill(&wal, b"new").unwrap().is_none());
    let offered = names(&pool, OFFERED_PREFIX);
    let meta = fs::metadata(pool.join(&offered[0])).unwrap();
    let kept = with_pool(&wal, |p| p.kept_bytes);
    assert_eq!(
        kept,
        meta.len().max(meta.blocks() * 512),
        "a spare that waits left the budget's count"
    );
    // Its bytes, but no longer named: the name check says "absent".
    let mut read = |f: &mut File| read_file(f);
    assert_eq!(read(&mut reader).unwrap(), b"old record");
    assert!(
        read_opened(Name::path(&old), reader, &mut read)
            .unwrap()
            .is_none()
    );
    let spare = refill(&wal, b"new").unwrap().expect("the spare, once free");
    assert_eq!(fs::read(spare).unwrap(), b"new");
}

/// An object some tool hard-linked elsewhere is unlinked, never emptied
/// or refilled: the other name keeps its bytes.
#[test]
fn an_object_with_another_name_is_never_recycled() {
    let (tmp, s, wal, _pool) = store("spares-linked");
    let old = put(&wal, 1, b"kept elsewhere");
    fs::hard_link(&old, tmp.path().join("backup")).unwrap();
    gc(&s, &[1]);
    assert!(!old.exists());
    assert!(refill(&wal, b"new").unwrap().is_none());
    let kept = fs::read(tmp.path().join("backup")).unwrap();
    assert_eq!(kept, b"kept elsewhere");
}

/// A dead process's names are adopted by the next GC there: its offered
/// and retired spares become this process's, a spare it had
/// already linked under a key only loses its pool name, and its `.live`
/// file goes. A live process's names are left alone.
#[test]
fn gc_adopts_a_dead_processs_names_and_leaves_a_live_ones() {
    let (_tmp, s, wal, pool) = store("spares-adopt");
    fs::create_dir_all(&pool).unwrap();
    let (dead, alive) = ("00000000000000d1", "00000000000000a1");
    fs::write(pool.join(format!("{LIVE_PREFIX}{dead}")), b"").unwrap();
    fs::write(pool.join(format!("s-{dead}-1")), b"half refilled").unwrap();
    fs::write(pool.join(format!("r-{dead}-2")), b"retired").unwrap();
    let linked = put(&wal, 9, b"acknowledged");
    fs::hard_link(&linked, pool.join(format!("s-{dead}-3"))).unwrap();
    let live = File::create(pool.join(format!("{LIVE_PREFIX}{alive}"))).unwrap();
    live.lock_shared().unwrap();
    fs::write(pool.join(format!("s-{alive}-1")), b"").unwrap();

    put(&wal, 1, b"x");
    gc(&s, &[1]);
    assert_eq!(fs::read(&linked).unwrap(), b"acknowledged");
    assert_eq!(fs::metadata(&linked).unwrap().nlink(), 1);
    let mut refilled = 0;
    while let Some(spare) = refill(&wal, b"new").unwrap() {
        assert_eq!(fs::read(&spare).unwrap(), b"new");
        fs::remove_file(spare).unwrap();
        refilled += 1;
    }
    assert_eq!(refilled, 3, "two adopted and this run's own");
    let left: Vec<String> = names(&pool, "");
    let expected = [
        format!("{LIVE_PREFIX}{alive}"),
        format!("{LIVE_PREFIX}{}", me()),
        format!("s-{alive}-1"),
    ];
    assert_eq!(left, expected);
}

/// An older boot's pool is never touched: a power loss may have left its
/// names sharing inodes with keys, with link counts nothing repaired.
#[test]
fn an_older_boots_pool_is_never_touched() {
    let (_tmp, s, wal, _pool) = store("spares-old-boot");
    let old_boot = wal
        .join(SPARE_DIR)
        .join("00000000-0000-0000-0000-000000000000");
    fs::create_dir_all(&old_boot).unwrap();
    let live = put(&wal, 7, b"acknowledged");
    fs::write(old_boot.join(".live-00000000000000d3"), b"").unwrap();
    fs::hard_link(&live, old_boot.join("s-00000000000000d3-1")).unwrap();
    fs::hard_link(&live, old_boot.join("r-00000000000000d3-2")).unwrap();

    put(&wal, 1, b"x");
    gc(&s, &[1]);
    while let Some(spare) = refill(&wal, b"new").unwrap() {
        fs::remove_file(spare).unwrap();
    }
    assert_eq!(fs::read(&live).unwrap(), b"acknowledged");
    assert_eq!(names(&old_boot, "").len(), 3);
}

/// The room is what the pool does not hold yet, counting every name in
/// it (its `.live` files too).
#[test]
fn the_room_counts_every_name_in_the_pool() {
    let (_tmp, _s, wal, pool) = store("spares-room");
    fs::create_dir_all(&pool).unwrap();
    for name in ["s-00000000000000a2-1", "r-00000000000000a2-2", "other"] {
        fs::write(pool.join(name), b"").unwrap();
    }
    let live = File::create(pool.join(format!("{LIVE_PREFIX}00000000000000a2"))).unwrap();
    live.lock_shared().unwrap();
    let run = Retiring::begin(&wal);
    assert_eq!(
        run.room,
        SPARES_PER_DIR_MAX - 5,
        "four names and this process's .live"
    );
}

/// A full pool takes no more: GC unlinks as before.
#[test]
fn a_full_pool_takes_no_more_spares() {
    let (_tmp, _s, wal, pool) = store("spares-full");
    let old = put(&wal, 1, b"x");
    let mut run = Retiring::begin(&wal);
    run.room = 0;
    run.retire(&old).unwrap();
    sync_dir(&wal).unwrap();
    run.offer();
    assert!(!old.exists());
    assert!(names(&pool, OFFERED_PREFIX).is_empty());
    assert!(names(&pool, RETIRING_PREFIX).is_empty());
}

/// A read that took no lock (no pool yet) while GC made the pool, took the
/// object and a put refilled its inode counts for nothing: the pool check
/// after it sends the read through the lock, which answers "absent".
#[test]
fn an_unlocked_read_during_which_a_pool_appears_counts_for_nothing() {
    let (_tmp, s, wal, pool) = store("spares-unlocked");
    let old = put(&wal, 1, b"old record");
    let mut first = true;
    let got = read_wal(&old, |f| {
        if std::mem::take(&mut first) {
            assert!(!pool.exists());
            gc_then_refill_as_2(&s, &wal);
        }
        read_file(f)
    })
    .unwrap();
    assert!(got.is_none(), "read {got:?}");
}

/// The same schedule in a batch (which opens its files by name in the
/// directory it holds open, and checks the pool once after them all): the
/// read that raced GC and a refill answers "absent", the others stand.
#[test]
fn a_batch_during_which_a_pool_appears_reads_again_under_the_lock() {
    let (_tmp, s, wal, pool) = store("spares-unlocked-batch");
    let old = put(&wal, 1, b"old record");
    let other = put(&wal, 3, b"third record");
    let mut first = true;
    let got = read_wal_batch(&[&old, &other], |f| {
        if std::mem::take(&mut first) {
            assert!(!pool.exists());
            gc_then_refill_as_2(&s, &wal);
        }
        read_file(f)
    });
    let got: Vec<Option<Vec<u8>>> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, [None, Some(b"third record".to_vec())]);
}
