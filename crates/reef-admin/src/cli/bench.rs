//! `reef bench`: a load generator against any store URL. `--writers`
//! tasks share one engine (as one service would); each sends requests of
//! `--ops` upserts of `--doc-bytes`-byte documents and waits for the
//! acknowledgement, or, with probability `--reads`, reads one document,
//! until `--duration` has passed. It prints throughput, acknowledgement
//! and read latency percentiles, object-store requests per acknowledged
//! write, and the process's peak RSS.
//!
//! Keys: `unique` (each writer its own, never overwritten within a run)
//! or `uniform` (uniformly over `--key-space` ids shared by all writers).
//! Reads pick among the ids written so far.
//!
//! Invariant: a bench only measures; it writes into its namespace like
//! any client and leaves it there (run `reef gc`, or use a scratch store).

// A measurement tool: real wall time and randomness are what it needs.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a load generator measures real time"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use reef_engine::{Engine, EngineOptions};
use reef_format::{Document, Op, Value, WriteRequest};
use reef_manifest::store::{CountingStore, DynStore};
use reef_manifest::{Rng, SeededRng, SystemRng};
use serde::Serialize;

use super::exit::InputError;

/// How ids are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Keys {
    /// Each writer its own ids (`w<writer>-<n>`): inserts only.
    Unique,
    /// Uniformly over `--key-space` ids shared by every writer: updates.
    Uniform,
}

/// The workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Namespace written.
    pub namespace: String,
    /// Concurrent writer tasks.
    pub writers: usize,
    /// How long to run.
    pub duration: Duration,
    /// Upserts per request.
    pub ops: usize,
    /// Filler bytes per document.
    pub doc_bytes: usize,
    /// How ids are chosen.
    pub keys: Keys,
    /// Distinct ids for `Keys::Uniform`.
    pub key_space: u64,
    /// Fraction of operations that are point reads.
    pub reads: f64,
    /// Whether the engine folds in the background as it would in service.
    pub fold: bool,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The store URL.
    pub store: String,
    /// Namespace written.
    pub namespace: String,
    /// Concurrent writer tasks.
    pub writers: usize,
    /// Upserts per request.
    pub ops_per_request: usize,
    /// Filler bytes per document.
    pub doc_bytes: usize,
    /// `unique` or `uniform`.
    pub keys: String,
    /// Fraction of operations that were reads.
    pub read_fraction: f64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Acknowledged write requests.
    pub writes: u64,
    /// Acknowledged write requests per second.
    pub writes_per_s: f64,
    /// Documents written per second.
    pub docs_per_s: f64,
    /// From sending a request to its acknowledgement.
    pub write_latency: Latency,
    /// Point reads done.
    pub reads: u64,
    /// Point reads per second.
    pub reads_per_s: f64,
    /// Point read latency, if any were done.
    pub read_latency: Option<Latency>,
    /// Object-store requests per acknowledged write request (all kinds,
    /// folds and compactions included).
    pub store_requests_per_write: f64,
    /// Object PUTs per acknowledged write request.
    pub store_puts_per_write: f64,
    /// Peak resident set size of the process (Linux).
    pub peak_rss_mib: Option<f64>,
}

fn histogram() -> Result<Histogram<u64>> {
    // 1 µs to 10 min at 3 significant digits: about 86 KiB each.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("latency histogram")
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// The document of a write: a counter and a `doc_bytes`-long filler.
fn document(n: u64, doc_bytes: usize) -> Document {
    Document::from_iter([
        ("n".to_owned(), Value::I64(n as i64)),
        ("body".to_owned(), Value::String("x".repeat(doc_bytes))),
    ])
}

/// Every task's ack latencies, in µs: one pair shared by all tasks, not a
/// pair per task (256 tasks' pairs were 43 MB of the peak RSS the report
/// gives as the engine's). A record holds the lock for tens of ns.
struct Latencies {
    writes: Histogram<u64>,
    reads: Histogram<u64>,
}

/// Locks the shared histograms (a panicked task's record is still valid).
fn record(latencies: &Mutex<Latencies>, read: bool, start: Instant) {
    let mut l = latencies.lock().unwrap_or_else(PoisonError::into_inner);
    let h = if read { &mut l.reads } else { &mut l.writes };
    h.saturating_record(start.elapsed().as_micros() as u64);
}

async fn task(
    engine: Arc<Engine>,
    w: Arc<Workload>,
    writer: usize,
    seed: u64,
    deadline: Instant,
    written: Arc<AtomicU64>,
    latencies: Arc<Mutex<Latencies>>,
) -> Result<()> {
    let rng = SeededRng::new(seed);
    let mut own = 0u64;
    let threshold = (w.reads.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    while Instant::now() < deadline {
        let read = rng.next_u64() < threshold && written.load(Ordering::Relaxed) > 0;
        let start = Instant::now();
        if read {
            let id = match w.keys {
                Keys::Unique if own > 0 => format!("w{writer}-{}", rng.next_u64() % own),
                Keys::Unique => continue,
                Keys::Uniform => format!("k{}", rng.next_u64() % w.key_space),
            };
            engine.get(&w.namespace, &id).await?;
            record(&latencies, true, start);
            continue;
        }
        let ops = (0..w.ops).map(|_| {
            let id = match w.keys {
                Keys::Unique => {
                    own += 1;
                    format!("w{writer}-{}", own - 1)
                }
                Keys::Uniform => format!("k{}", rng.next_u64() % w.key_space),
            };
            Op::upsert(id, document(own, w.doc_bytes))
        });
        let request = WriteRequest::new(ops.collect::<Vec<_>>());
        engine
            .write(&w.namespace, request)
            .await
            .context("a bench write failed")?;
        record(&latencies, false, start);
        written.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Peak resident set size of this process, from /proc (Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the workload on `store` (named `store_name` in the report).
pub async fn run(store: DynStore, store_name: &str, w: Workload) -> Result<Report> {
    let bad = |what: &str| Err(InputError(what.to_owned()).into());
    if w.writers == 0 {
        return bad("--writers must be at least 1");
    }
    if w.ops == 0 {
        return bad("--ops must be at least 1");
    }
    if w.key_space == 0 {
        return bad("--key-space must be at least 1");
    }
    if !(0.0..=1.0).contains(&w.reads) {
        return bad("--reads must be a fraction from 0 to 1");
    }
    let counting = Arc::new(CountingStore::new(store));
    let options = EngineOptions {
        background: w.fold,
        ..EngineOptions::default()
    };
    let engine = Arc::new(Engine::open(Arc::clone(&counting) as DynStore, options).await?);
    let w = Arc::new(w);
    let written = Arc::new(AtomicU64::new(0));
    let before = counting.counts();
    let start = Instant::now();
    let deadline = start + w.duration;
    let seeds = SystemRng::new();
    let latencies = Arc::new(Mutex::new(Latencies {
        writes: histogram()?,
        reads: histogram()?,
    }));
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..w.writers {
        tasks.spawn(task(
            Arc::clone(&engine),
            Arc::clone(&w),
            writer,
            seeds.next_u64(),
            deadline,
            Arc::clone(&written),
            Arc::clone(&latencies),
        ));
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a bench task panicked")??;
    }
    // Every task has ended, and its handle with it.
    let Latencies { writes, reads } = Arc::into_inner(latencies)
        .context("a bench task outlived the run")?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let seconds = start.elapsed().as_secs_f64();
    let used = counting.counts().since(&before);
    engine.close().await?;
    let acked = writes.len();
    let per_write = |n: u64| {
        if acked == 0 {
            0.0
        } else {
            n as f64 / acked as f64
        }
    };
    Ok(Report {
        store: store_name.to_owned(),
        namespace: w.namespace.clone(),
        writers: w.writers,
        ops_per_request: w.ops,
        doc_bytes: w.doc_bytes,
        keys: format!("{:?}", w.keys).to_lowercase(),
        read_fraction: w.reads,
        seconds,
        writes: acked,
        writes_per_s: acked as f64 / seconds,
        docs_per_s: (acked * w.ops as u64) as f64 / seconds,
        write_latency: latency(&writes),
        reads: reads.len(),
        reads_per_s: reads.len() as f64 / seconds,
        read_latency: (!reads.is_empty()).then(|| latency(&reads)),
        store_requests_per_write: per_write(used.requests()),
        store_puts_per_write: per_write(used.put + used.put_if_absent + used.put_if_match),
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The report for people: a few aligned lines.
pub fn render(r: &Report) -> String {
    let l = |x: &Latency| {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
            x.p50_ms, x.p99_ms, x.p999_ms, x.max_ms
        )
    };
    let mut s = format!(
        "{} writers, {} op(s) of {} bytes per request, {} keys, {:.0}% reads, {:.1} s on {}\n",
        r.writers,
        r.ops_per_request,
        r.doc_bytes,
        r.keys,
        r.read_fraction * 100.0,
        r.seconds,
        r.store
    );
    s += &format!(
        "writes: {} acknowledged, {:.0}/s ({:.0} docs/s); {}\n",
        r.writes,
        r.writes_per_s,
        r.docs_per_s,
        l(&r.write_latency)
    );
    if let Some(rl) = &r.read_latency {
        s += &format!("reads:  {}, {:.0}/s; {}\n", r.reads, r.reads_per_s, l(rl));
    }
    s += &format!(
        "store:  {:.2} requests and {:.2} PUTs per acknowledged write\n",
        r.store_requests_per_write, r.store_puts_per_write
    );
    if let Some(rss) = r.peak_rss_mib {
        s += &format!("memory: peak RSS {rss:.0} MiB\n");
    }
    s
}
