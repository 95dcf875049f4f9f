//! Reef and SlateDB side by side (issue #13): the same workloads, the same
//! disk, one process, one run, so every ratio compares like with like.
//!
//! ```text
//! cargo run --release --manifest-path peer/Cargo.toml -- DIR [SECONDS]
//! ```
//!
//! Workloads, each for SECONDS (default 5):
//! - durable writes: W writers (1, 16, 64, 256), each writing its own keys
//!   one 100-byte value per request and waiting until it is durable (Reef:
//!   `Engine::write` returns after its WAL object is put-if-absent with
//!   fsync; SlateDB: `put(..).await_durable()`, `flush_interval` 1 ms);
//! - point gets of written keys after a flush, from 1 and 16 tasks;
//! - a full scan;
//! - the floor under a durable write: one put-if-absent of a WAL-sized
//!   object at a time on Reef's `LocalStore` (fsync of the file, link,
//!   fsync of the directory), against Reef's single writer, the two taking
//!   turns in short slices so both meet the same disk.
//!
//! Both stores are local directories on the same file system (Reef's
//! `LocalStore`, SlateDB's `object_store::local::LocalFileSystem`). The
//! latter fsyncs nothing unless asked (`with_fsync`, off by default): its
//! "durable" writes would then survive a crash of the process, not of the
//! machine. SlateDB runs with fsync on, as Reef always does; the write
//! table also shows SlateDB without it, from a second database, for
//! reference only.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use hdrhistogram::Histogram;
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_format::{Document, Op, Value, WriteRequest};
use reef_manifest::store::{DynStore, LocalStore, ObjectStore};
use slatedb::Db;
use slatedb::config::Settings;
use slatedb::object_store::local::LocalFileSystem;

type Error = Box<dyn std::error::Error + Send + Sync>;

const VALUE_BYTES: usize = 100;

fn value() -> String {
    "v".repeat(VALUE_BYTES)
}

/// Either store, behind the three operations the workloads need.
#[derive(Clone)]
enum Store {
    Reef(Arc<Engine>),
    Slate(Arc<Db>),
}

/// SlateDB on a local directory, its files (and their directories)
/// fsynced before a put returns if `fsync`.
async fn open_slate(dir: &std::path::Path, fsync: bool) -> Result<Store, Error> {
    std::fs::create_dir_all(dir)?;
    let fs = Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_fsync(fsync));
    let settings = Settings {
        flush_interval: Some(Duration::from_millis(1)),
        ..Settings::default()
    };
    let db = Db::builder("peer", fs)
        .with_settings(settings)
        .build()
        .await?;
    Ok(Store::Slate(Arc::new(db)))
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Reef(_) => "Reef",
            Store::Slate(_) => "SlateDB",
        }
    }

    async fn put(&self, key: String) -> Result<(), Error> {
        match self {
            Store::Reef(e) => {
                let doc = Document::from_iter([("v".to_owned(), Value::String(value()))]);
                e.write("peer", WriteRequest::new([Op::upsert(key, doc)]))
                    .await?;
            }
            Store::Slate(db) => {
                db.put(key.as_bytes(), value().as_bytes())
                    .await?
                    .await_durable()
                    .await?;
            }
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<bool, Error> {
        Ok(match self {
            Store::Reef(e) => e.get("peer", key).await?.is_some(),
            Store::Slate(db) => db.get(key.as_bytes()).await?.is_some(),
        })
    }

    async fn flush(&self) -> Result<(), Error> {
        match self {
            Store::Reef(e) => {
                e.flush("peer").await?;
            }
            Store::Slate(db) => db.flush().await?,
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), Error> {
        match self {
            Store::Reef(e) => e.close().await?,
            Store::Slate(db) => db.close().await?,
        }
        Ok(())
    }

    async fn scan(&self) -> Result<u64, Error> {
        let mut n = 0;
        match self {
            Store::Reef(e) => {
                let mut docs = e.scan_stream("peer", &ScanRange::default()).await?;
                while docs.try_next().await?.is_some() {
                    n += 1;
                }
            }
            Store::Slate(db) => {
                let mut it = db.scan(..).await?;
                while it.next().await?.is_some() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

struct WriteRun {
    per_s: f64,
    p50: f64,
    p99: f64,
    keys: u64,
}

async fn writes(store: &Store, writers: usize, seconds: f64) -> Result<WriteRun, Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                store.put(format!("w{writers:03}-{w:03}-{n:09}")).await?;
                h.saturating_record(t.elapsed().as_micros() as u64);
                n += 1;
            }
            Ok::<_, Error>(h)
        });
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(h) = tasks.join_next().await {
        all.add(h??)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(WriteRun {
        per_s: all.len() as f64 / secs,
        p50: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99: all.value_at_quantile(0.99) as f64 / 1000.0,
        keys: all.len(),
    })
}

/// Slices each side of the floor comparison gets.
const FLOOR_SLICES: u32 = 40;

/// The p50s (ms) of one put-if-absent of a single write's WAL object (200
/// bytes), one at a time on a `LocalStore` under `dir`, and of Reef's
/// single writer, for `seconds` each, taking turns in `FLOOR_SLICES`
/// slices. The disk's latency drifts by half within minutes; runs one
/// after the other compared the drift, not the two.
async fn single_writer_and_floor(
    reef: &Store,
    dir: &std::path::Path,
    seconds: f64,
) -> Result<(f64, f64), Error> {
    let store = LocalStore::new(dir);
    let body = bytes::Bytes::from(vec![b'x'; 200]);
    let mut floor = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut ours = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let slice = Duration::from_secs_f64(seconds / f64::from(FLOOR_SLICES));
    let mut n = 0u64;
    for _ in 0..FLOOR_SLICES {
        let until = Instant::now() + slice;
        while Instant::now() < until {
            let t = Instant::now();
            store
                .put_if_absent(&format!("floor/{n:020}"), body.clone())
                .await?;
            floor.saturating_record(t.elapsed().as_micros() as u64);
            n += 1;
        }
        let until = Instant::now() + slice;
        while Instant::now() < until {
            let t = Instant::now();
            reef.put(format!("single-{n:09}")).await?;
            ours.saturating_record(t.elapsed().as_micros() as u64);
            n += 1;
        }
    }
    let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    Ok((p50(&floor), p50(&ours)))
}

/// Point gets of keys written by the 16-writer run, from `tasks` tasks.
async fn gets(store: &Store, tasks_n: usize, keys: u64, seconds: f64) -> Result<f64, Error> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..tasks_n {
        let store = store.clone();
        tasks.spawn(async move {
            let mut n = 0u64;
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = x % keys;
                let key = format!("w016-{:03}-{:09}", k % 16, k / 16);
                // Keys past a writer's last are simply absent: both pay
                // the same lookup.
                store.get(&key).await?;
                n += 1;
            }
            Ok::<_, Error>(n)
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: reef-peer DIR [SECONDS]")?);
    let seconds: f64 = args.get(2).map_or(Ok(5.0), |s| s.parse())?;
    let _ = std::fs::remove_dir_all(&dir);
    // ext4 without a journal passes over inodes freed in the last 60 s
    // when it allocates new ones (360 s while their inode-table block is
    // dirty, which writeback ends within about 35 s: `RECENTCY_MIN` and
    // `RECENTCY_DIRTY` in fs/ext4/ialloc.c), at a cost per inode passed:
    // right after deleting many files (a previous run's: `cargo xtask
    // bench --peer` removes them on exit), creating one (every WAL put,
    // every SST) took twice as long as half a minute later (single-writer
    // p50 ack 0.97 ms 15 s after deleting ~10k files, 0.49 ms after 30 s).
    // Neither store should pay for what ran before, so a measuring run
    // starts after a quiet 65 s. A run of under a second per workload (the
    // CI slice, which only keeps the harness from rotting) measures
    // nothing and does not wait.
    if seconds >= 1.0 {
        eprintln!("waiting 65 s for the file system to settle");
        tokio::time::sleep(Duration::from_secs(65)).await;
    }
    std::fs::create_dir_all(dir.join("reef"))?;

    let local: DynStore = Arc::new(LocalStore::new(dir.join("reef")));
    let reef = Store::Reef(Arc::new(
        Engine::open(local, EngineOptions::default()).await?,
    ));
    let slate = open_slate(&dir.join("slatedb"), true).await?;
    let slate_unsynced = open_slate(&dir.join("slatedb-nofsync"), false).await?;

    // First, while the namespace is empty and no maintenance runs, as for
    // the 1-writer row below.
    // Both from a task on the runtime, as the workloads' writers (and an
    // application's tasks) call: from `main`'s thread every one of Reef's
    // task hops wakes another thread, which the floor's single blocking
    // call does not (a throwaway A/B: 1.21-1.32x from `main`, 1.09-1.11x
    // from a task, the floor itself within 10 us either way).
    let (floor, single) = {
        let (reef, floor_dir) = (reef.clone(), dir.join("floor"));
        tokio::spawn(async move { single_writer_and_floor(&reef, &floor_dir, seconds).await })
            .await??
    };
    println!(
        "| writers | writes/s Reef / SlateDB | ratio | p50 / p99 ms Reef | p50 / p99 ms SlateDB \
         | SlateDB without fsync: writes/s, p50 ms |"
    );
    println!("|---:|---|---:|---|---|---|");
    let mut keys16 = (0, 0);
    for writers in [1usize, 16, 64, 256] {
        let r = writes(&reef, writers, seconds).await?;
        let s = writes(&slate, writers, seconds).await?;
        let u = writes(&slate_unsynced, writers, seconds).await?;
        if writers == 16 {
            keys16 = (r.keys, s.keys);
        }
        println!(
            "| {writers} | {:.0} / {:.0} | {:.2}× | {:.2} / {:.2} | {:.2} / {:.2} | {:.0}, {:.2} |",
            r.per_s,
            s.per_s,
            r.per_s / s.per_s,
            r.p50,
            r.p99,
            s.p50,
            s.p99,
            u.per_s,
            u.p50
        );
    }
    println!();
    println!(
        "Single-writer p50 ack {single:.3} ms; one put-if-absent of 200 bytes on the same \
         disk, in turns with it ({FLOOR_SLICES} slices each, {seconds} s in all each): \
         {floor:.3} ms; ratio {:.2}×.",
        single / floor
    );
    println!();
    for store in [&reef, &slate] {
        store.flush().await?;
    }
    println!("| reads | {} | {} | ratio |", reef.name(), slate.name());
    println!("|---|---:|---:|---:|");
    let keys = keys16.0.min(keys16.1).max(1);
    for tasks in [1usize, 16] {
        // Warm: one pass first, as a service's cache would be.
        let _ = gets(&reef, tasks, keys, seconds / 5.0).await?;
        let _ = gets(&slate, tasks, keys, seconds / 5.0).await?;
        let r = gets(&reef, tasks, keys, seconds).await?;
        let s = gets(&slate, tasks, keys, seconds).await?;
        println!(
            "| point gets/s, {tasks} task(s) | {r:.0} | {s:.0} | {:.2}× |",
            r / s
        );
    }
    let mut scans = Vec::new();
    for store in [&reef, &slate] {
        let t = Instant::now();
        let n = store.scan().await?;
        scans.push((n, n as f64 / t.elapsed().as_secs_f64()));
    }
    println!(
        "| full scan docs/s ({} / {} documents) | {:.0} | {:.0} | {:.2}× |",
        scans[0].0,
        scans[1].0,
        scans[0].1,
        scans[1].1,
        scans[0].1 / scans[1].1
    );
    for store in [&reef, &slate, &slate_unsynced] {
        store.close().await?;
    }
    Ok(())
}
