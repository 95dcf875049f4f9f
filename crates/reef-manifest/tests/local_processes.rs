//! Races between processes on one local directory, and a process killed
//! (SIGKILL) in the middle of a CAS: the next CAS must still succeed (an OS
//! lock dies with its holder; no lock file can wedge the store).
#![allow(
    clippy::disallowed_methods,
    reason = "real processes race on real time"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reef_manifest::store::{LocalStore, ObjectStore, PutOutcome};

const TORTURE: &str = env!("CARGO_BIN_EXE_reef-store-torture");

/// `reef-store-torture` started with `args`, its output piped back.
fn torture(args: [&str; 4]) -> std::process::Child {
    Command::new(TORTURE)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn processes_race_put_if_absent() {
    let dir = common::TempDir::new("proc-once");
    let children: Vec<_> = (0..8)
        .map(|i| {
            torture([
                "put-once",
                dir.path().to_str().unwrap(),
                "race/once",
                &format!("token-{i}"),
            ])
        })
        .collect();
    let mut winners = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        if String::from_utf8_lossy(&out.stdout).trim() == "won" {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one process wins put_if_absent");
    let stored = std::fs::read(dir.path().join("race/once")).unwrap();
    assert_eq!(stored, format!("token-{}", winners[0]).into_bytes());
}

#[test]
fn processes_increment_a_cas_counter() {
    let dir = common::TempDir::new("proc-cas");
    let (procs, each) = (4, 25);
    let children: Vec<_> = (0..procs)
        .map(|_| {
            torture([
                "cas-increment",
                dir.path().to_str().unwrap(),
                "race/counter",
                &each.to_string(),
            ])
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let n: u64 = std::fs::read_to_string(dir.path().join("race/counter"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        n,
        procs * each,
        "no increment lost or doubled across processes"
    );
}

/// Waits until another process holds the directory's CAS lock.
fn wait_until_locked(lock_path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(f) = std::fs::File::open(lock_path) {
            match f.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) => return,
                Ok(()) => drop(f),
                Err(e) => panic!("{e}"),
            }
        }
        assert!(Instant::now() < deadline, "child never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn sigkill_mid_cas_never_wedges_the_next_cas() {
    let dir = common::TempDir::new("proc-kill");
    let store = LocalStore::new(dir.path());
    for round in 0..5 {
        let mut child = torture([
            "cas-forever",
            dir.path().to_str().unwrap(),
            "race/counter",
            "300",
        ]);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "running");
        // Kill it while it holds the lock, mid-CAS (new content written to
        // a temporary file, not yet published).
        wait_until_locked(&dir.path().join("race/.reef-flock"));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        // The next CAS goes through promptly, on a whole (untorn) value.
        let started = Instant::now();
        let current = store.get("race/counter").await.unwrap();
        let (n, outcome) = match current {
            None => (
                0,
                store
                    .put_if_absent("race/counter", "1".into())
                    .await
                    .unwrap(),
            ),
            Some(obj) => {
                let n: u64 = std::str::from_utf8(&obj.bytes)
                    .unwrap()
                    .parse()
                    .expect("whole value");
                (
                    n,
                    store
                        .put_if_match("race/counter", (n + 1).to_string().into(), &obj.tag)
                        .await
                        .unwrap(),
                )
            }
        };
        assert!(
            matches!(outcome, PutOutcome::Written(_)),
            "round {round}: CAS after kill failed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "round {round}: CAS waited on a dead lock"
        );
        let after: u64 =
            std::str::from_utf8(&store.get("race/counter").await.unwrap().unwrap().bytes)
                .unwrap()
                .parse()
                .unwrap();
        assert_eq!(after, n + 1);
    }
    // The killed CASes left temporary files behind; nobody sees them.
    let listed = reef_manifest::store::list_all(&store, "race/")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

/// Processes recycle WAL inodes in one directory at once (each refills
/// only its own spares; GC runs take turns under the directory's lock),
/// and every object keeps its own bytes. Once they have exited, the next
/// GC there adopts what they left: their `.live` files go and their
/// spares serve this process's puts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_recycle_wal_inodes_and_the_next_gc_adopts_what_they_left() {
    let dir = common::TempDir::new("proc-spares");
    let (procs, each) = (3u64, 400u64);
    let children: Vec<_> = (0..procs)
        .map(|i| {
            torture([
                "wal-cycle",
                dir.path().to_str().unwrap(),
                &(1 + i * each).to_string(),
                &each.to_string(),
            ])
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = LocalStore::new(dir.path());
    let key = |lsn: u64| format!("ns/n/wal/{lsn:020}.wal");
    for lsn in 1..=procs * each {
        let got = store.get(&key(lsn)).await.unwrap();
        // Each process's run starts at 1 + i * each.
        if (lsn - 1) % each % 8 < 4 {
            assert!(got.is_none(), "{lsn} was deleted");
        } else {
            let want = format!("<{lsn}>").repeat(32 + (lsn % 5) as usize * 40);
            assert_eq!(got.unwrap().bytes, want.as_bytes(), "the bytes of {lsn}");
        }
    }

    let wal = dir.path().join("ns/n/wal");
    let pool = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".spare-")
        })
        .expect("a pool");
    let names = |prefix: &str| -> Vec<String> {
        std::fs::read_dir(&pool)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(prefix))
            .collect()
    };
    // Children that ended first were adopted by the others' GC already.
    let dead = names(".live-");
    assert!(!dead.is_empty());
    let left = names("s-").len();
    assert!(left > 0, "the processes left no spares");

    let next = procs * each + 1;
    store
        .put_if_absent(&key(next), bytes::Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.delete_many(&[key(next)]).await.unwrap();
    let live = names(".live-");
    assert!(
        live.len() == 1 && !dead.contains(&live[0]),
        "dead processes' .live files stayed: {live:?}"
    );
    // Theirs, and the one this GC retired.
    for lsn in next + 1..=next + 1 + left as u64 {
        let record = bytes::Bytes::from(format!("new {lsn}"));
        store
            .put_if_absent(&key(lsn), record.clone())
            .await
            .unwrap();
        assert_eq!(store.get(&key(lsn)).await.unwrap().unwrap().bytes, record);
    }
    assert!(names("s-").is_empty(), "the adopted spares were not reused");
}
