//! `cargo xtask bench --limits [--quick]`: the limits of issue #13 that are
//! not ratios to SlateDB (the peer harness measures those), measured as a
//! user meets them: every command a fresh `reef` process on a local
//! directory, a release build.
//!
//! - a one-shot `reef get` with 10,000 unfolded WAL objects (< 100 ms);
//! - a one-shot `reef get` after an import of 1,000,000 documents and
//!   2,000 `reef write` processes (≤ 20 ms);
//! - a fold of unfolded WAL and a compaction of a 2 GiB namespace (≥ 100
//!   MB/s each);
//! - peak RSS of compact, scan and get (an open) on that namespace (< 256
//!   MiB).
//!
//! Wall time is spawn to exit. Peak RSS is the child's `VmHWM`, read from
//! /proc every millisecond while it runs: a high-water mark, so what it
//! misses is at most a rise in the child's last millisecond. The full run
//! writes its table into docs/benchmarks.md and marks each limit met or
//! not; it never fails for a slow machine (a benchmark, not a test).
//! `--quick`, CI's slice, runs the same steps at toy sizes on the debug
//! build and only prints, so the steps cannot rot.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::metadata;
use crate::util;

/// What one run measures at.
struct Sizes {
    wal_objects: usize,
    import_docs: usize,
    cli_writes: usize,
    big_mib: u32,
    fold_duration: &'static str,
    runs: usize,
}

const FULL: Sizes = Sizes {
    wal_objects: 10_000,
    import_docs: 1_000_000,
    cli_writes: 2_000,
    big_mib: 2048,
    fold_duration: "3s",
    runs: 20,
};

const QUICK: Sizes = Sizes {
    wal_objects: 300,
    import_docs: 2_000,
    cli_writes: 5,
    big_mib: 4,
    fold_duration: "1s",
    runs: 2,
};

/// Marks the section in docs/benchmarks.md.
const BEGIN: &str = "<!-- limits:begin (written by `cargo xtask bench --limits`) -->";
const END: &str = "<!-- limits:end -->";

/// One finished process.
struct Run {
    wall: Duration,
    peak_mib: f64,
    /// The first `KEPT_STDOUT` bytes of its output.
    stdout: String,
    /// All of its output's length.
    stdout_bytes: u64,
}

/// Output kept per process (a scan prints gigabytes; only counted).
const KEPT_STDOUT: usize = 64 << 10;

/// One line of the table.
struct Row {
    what: String,
    measured: String,
    limit: &'static str,
    met: bool,
}

/// Builds `reef` and the `fill` example, measures, prints the table and,
/// unless `quick`, writes it into docs/benchmarks.md.
pub fn run(quick: bool) -> Result<()> {
    let sizes = if quick { &QUICK } else { &FULL };
    let profile: &[&str] = if quick { &[] } else { &["--release"] };
    util::run(
        util::cargo()
            .args(["build", "-q", "-p", "reef-admin", "--bin", "reef"])
            .args(profile),
    )?;
    util::run(
        util::cargo()
            .args(["build", "-q", "-p", "reef-engine", "--example", "fill"])
            .args(profile),
    )?;
    let bin =
        metadata::target_dir(&metadata::load()?).join(if quick { "debug" } else { "release" });
    let tools = Tools {
        reef: bin.join("reef"),
        fill: bin.join("examples/fill"),
    };
    let dir = std::env::temp_dir().join(format!("reef-limits-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Everything stays until the end: deleting many files right before a
    // step that creates files slows it (ext4 passes over recently freed
    // inodes), which would measure the previous step.
    let rows = measure(&tools, &dir, sizes);
    let _ = fs::remove_dir_all(&dir);
    let table = render(&rows?, !quick);
    println!("\n{table}");
    if !quick {
        write_section(&table)?;
    }
    Ok(())
}

struct Tools {
    reef: PathBuf,
    fill: PathBuf,
}

fn measure(tools: &Tools, dir: &Path, sizes: &Sizes) -> Result<Vec<Row>> {
    let mut rows = vec![open_unfolded(tools, &dir.join("open"), sizes)?];
    rows.push(after_cli_history(tools, &dir.join("history"), sizes)?);
    rows.push(fold(tools, &dir.join("fold"), sizes)?);
    rows.extend(big(tools, &dir.join("big"), sizes)?);
    Ok(rows)
}

/// A one-shot `reef get` on a namespace with `wal_objects` unfolded WAL
/// objects, each a single upsert.
fn open_unfolded(tools: &Tools, store: &Path, sizes: &Sizes) -> Result<Row> {
    let n = sizes.wal_objects;
    let wal = store.join("ns/u/wal");
    for _ in 0..64 {
        if wal_objects(&wal)?.len() >= n {
            break;
        }
        let args = [
            "bench",
            "u",
            "--writers",
            "1",
            "--no-fold",
            "--duration",
            "2s",
        ];
        reef(tools, store, &args, None)?;
    }
    let mut keys = wal_objects(&wal)?;
    if keys.len() < n {
        bail!("only {} WAL objects in {}", keys.len(), wal.display());
    }
    // The newest go: the namespace is what n single writes leave.
    for key in keys.split_off(n) {
        fs::remove_file(wal.join(&key)).with_context(|| format!("removing {key}"))?;
    }
    let runs = repeat(sizes.runs, || {
        reef(tools, store, &["get", "u", "w0-5"], None)
    })?;
    if !runs.iter().all(|r| r.stdout.contains("\"w0-5\"")) {
        bail!("`reef get u w0-5` did not find the document");
    }
    let left = wal_objects(&wal)?.len();
    if left != n {
        bail!("{n} WAL objects became {left}: a `get` folded");
    }
    Ok(latency_row(
        format!("one-shot `reef get`, {n} unfolded WAL objects (opening replays them)"),
        &runs,
        "< 100 ms",
        100.0,
    ))
}

/// A one-shot `reef get` after an import and many `reef write` processes,
/// each its own process (which folds before exiting past its triggers).
fn after_cli_history(tools: &Tools, store: &Path, sizes: &Sizes) -> Result<Row> {
    let docs = sizes.import_docs;
    let input = store.with_extension("jsonl");
    let mut lines = String::with_capacity(docs * 64);
    for i in 0..docs {
        lines.push_str(&format!(
            "{{\"id\":\"u{i:07}\",\"n\":{i},\"note\":\"{}\"}}\n",
            "x".repeat(40)
        ));
    }
    fs::write(&input, lines).with_context(|| format!("writing {}", input.display()))?;
    let input_arg = input.to_string_lossy().into_owned();
    reef(tools, store, &["import", "g", &input_arg, "-q"], None)?;
    for i in 1..=sizes.cli_writes {
        let op = format!(
            "{{\"op\":\"upsert\",\"id\":\"u{:07}\",\"doc\":{{\"n\":{i}}}}}\n",
            (i * 499) % docs
        );
        reef(tools, store, &["write", "g", "-q"], Some(op.as_bytes()))?;
    }
    let id = format!("u{:07}", docs / 2);
    let runs = repeat(sizes.runs, || reef(tools, store, &["get", "g", &id], None))?;
    let stats = reef(tools, store, &["stats", "g"], None)?.stdout;
    Ok(latency_row(
        format!(
            "one-shot `reef get` after `reef import` of {docs} documents and {} `reef write` \
             processes (then: {})",
            sizes.cli_writes,
            shape(&stats)
        ),
        &runs,
        "≤ 20 ms",
        20.0,
    ))
}

/// `reef flush` of unfolded WAL (4 KB documents) in a fresh process,
/// recovery included.
fn fold(tools: &Tools, store: &Path, sizes: &Sizes) -> Result<Row> {
    let args = [
        "bench",
        "f",
        "--writers",
        "16",
        "--ops",
        "16",
        "--doc-bytes",
        "4000",
        "--no-fold",
        "--duration",
        sizes.fold_duration,
    ];
    // A faster disk may fill the memtable's budget first: the bench then
    // stops with "overloaded" (exit 75), its writes durable. What is
    // folded is whatever it left.
    match reef(tools, store, &args, None) {
        Err(e) if format!("{e:#}").contains("exit status: 75") => {}
        other => drop(other?),
    }
    let wal = store.join("ns/f/wal");
    let mut bytes = 0;
    for key in wal_objects(&wal)? {
        bytes += fs::metadata(wal.join(key))?.len();
    }
    let run = reef(tools, store, &["flush", "f"], None)?;
    let mbps = bytes as f64 / 1e6 / run.wall.as_secs_f64();
    Ok(Row {
        what: format!(
            "`reef flush` (recovery, then folds) of {:.0} MB of unfolded WAL",
            bytes as f64 / 1e6
        ),
        measured: format!(
            "{:.2} s, {mbps:.0} MB/s; peak RSS {:.0} MiB",
            run.wall.as_secs_f64(),
            run.peak_mib
        ),
        limit: "≥ 100 MB/s",
        met: mbps >= 100.0,
    })
}

/// A namespace of `big_mib` MiB of 4 KB documents: compacted whole,
/// scanned, and read once.
fn big(tools: &Tools, store: &Path, sizes: &Sizes) -> Result<Vec<Row>> {
    let mib = sizes.big_mib.to_string();
    let store_arg = store.to_string_lossy().into_owned();
    let filled = spawn_and_wait(
        Command::new(&tools.fill).args([&store_arg, "big", &mib]),
        None,
    )?;
    let docs: usize = filled
        .stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("`fill` printed no document count")?;
    // One document at each end of the id range, flushed: the compaction's
    // level 0 then overlaps every level-1 segment, and it rewrites all.
    let ends = "{\"op\":\"upsert\",\"id\":\"a-first\",\"doc\":{\"x\":1}}\n\
                {\"op\":\"upsert\",\"id\":\"zz-last\",\"doc\":{\"x\":2}}\n";
    reef(tools, store, &["write", "big", "-q"], Some(ends.as_bytes()))?;
    reef(tools, store, &["flush", "big", "-q"], None)?;
    let compact = reef(tools, store, &["compact", "big"], None)?;
    let bytes_in =
        json_u64(&compact.stdout, "bytes_in").context("`reef compact` printed no bytes_in")?;
    let mbps = bytes_in as f64 / 1e6 / compact.wall.as_secs_f64();
    let scan = spawn_and_wait(
        Command::new(&tools.reef)
            .arg("--store")
            .arg(store)
            .args(["scan", "big"]),
        None,
    )?;
    let id = format!("doc-{:08}", docs / 2);
    let get = reef(tools, store, &["get", "big", &id], None)?;
    let gb = bytes_in as f64 / 1e9;
    let rss = |r: &Run| r.peak_mib < 256.0;
    Ok(vec![
        Row {
            what: format!(
                "`reef compact` of a {gb:.2} GB namespace ({docs} documents), all of it rewritten"
            ),
            measured: format!(
                "{:.1} s, {mbps:.0} MB/s; peak RSS {:.0} MiB",
                compact.wall.as_secs_f64(),
                compact.peak_mib
            ),
            limit: "≥ 100 MB/s, < 256 MiB",
            met: mbps >= 100.0 && rss(&compact),
        },
        Row {
            what: format!(
                "`reef scan` of it (every document, as JSON lines, {} MB)",
                scan.stdout_bytes / 1_000_000
            ),
            measured: format!(
                "{:.1} s; peak RSS {:.0} MiB",
                scan.wall.as_secs_f64(),
                scan.peak_mib
            ),
            limit: "< 256 MiB",
            met: rss(&scan),
        },
        Row {
            what: "a one-shot `reef get` in it (opens the namespace)".to_owned(),
            measured: format!("{:.1} ms; peak RSS {:.0} MiB", ms(get.wall), get.peak_mib),
            limit: "< 256 MiB",
            met: rss(&get),
        },
    ])
}

/// Runs `reef --store STORE ARGS`, feeding `stdin`; fails unless it exits 0.
fn reef(tools: &Tools, store: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Run> {
    spawn_and_wait(
        Command::new(&tools.reef)
            .arg("--store")
            .arg(store)
            .args(args),
        stdin,
    )
}

/// Runs `cmd` to its exit, timing it and sampling its peak RSS.
fn spawn_and_wait(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Run> {
    let shown = util::display(cmd);
    let started = Instant::now();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)
            .with_context(|| format!("feeding `{shown}`"))?;
    }
    // Drained as it comes, or a child printing more than a pipe holds
    // would wait for us forever.
    let mut out = child.stdout.take().context("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let (mut kept, mut total, mut buf) = (Vec::new(), 0u64, vec![0u8; 1 << 16]);
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = KEPT_STDOUT.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buf[..room]);
            total += n as u64;
        }
        (kept, total)
    });
    let mut err = child.stderr.take().context("no stderr pipe")?;
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = started.elapsed();
    let (kept, stdout_bytes) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader"))?;
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("`{shown}` failed ({status}): {}", stderr.trim());
    }
    Ok(Run {
        wall,
        peak_mib: peak_kib as f64 / 1024.0,
        stdout: String::from_utf8_lossy(&kept).into_owned(),
        stdout_bytes,
    })
}

/// Peak resident memory (`VmHWM`) of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn repeat(n: usize, mut f: impl FnMut() -> Result<Run>) -> Result<Vec<Run>> {
    (0..n).map(|_| f()).collect()
}

/// The WAL objects' names in `wal` (not the dot names: temporary files, a
/// spares pool), sorted: oldest first.
fn wal_objects(wal: &Path) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    if !wal.exists() {
        return Ok(keys);
    }
    for entry in fs::read_dir(wal).with_context(|| format!("listing {}", wal.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            keys.push(name);
        }
    }
    keys.sort();
    Ok(keys)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median, p90 and max wall time of `runs`; met if the median is under
/// `limit_ms`.
fn latency_row(what: String, runs: &[Run], limit: &'static str, limit_ms: f64) -> Row {
    let mut walls: Vec<f64> = runs.iter().map(|r| ms(r.wall)).collect();
    walls.sort_by(f64::total_cmp);
    let at = |q: f64| walls[((walls.len() - 1) as f64 * q).round() as usize];
    let peak = runs.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
    Row {
        what: format!("{what}, {} fresh processes", runs.len()),
        measured: format!(
            "median {:.1} ms, p90 {:.1} ms, max {:.1} ms; peak RSS {peak:.0} MiB",
            at(0.5),
            at(0.9),
            at(1.0)
        ),
        limit,
        met: at(0.5) <= limit_ms,
    }
}

/// What `reef stats` says a namespace holds: unfolded WAL and segments.
fn shape(stats: &str) -> String {
    let wal = json_u64(stats, "wal_objects").unwrap_or(0);
    let segments = stats
        .split_once("\"segments\":")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or("?", |(s, _)| s);
    format!("{wal} WAL objects unfolded, segments by level {segments}}}")
}

/// A number field of a one-line JSON object, without a JSON parser's
/// dependency on field order or spacing beyond `"key":value`.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let (_, rest) = json.split_once(&format!("\"{key}\":"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The table; `judged` false (toy sizes, a debug build) leaves "met" open.
fn render(rows: &[Row], judged: bool) -> String {
    let mut out = String::from("| what | measured | limit | met |\n|---|---|---|---|\n");
    for r in rows {
        let met = match (judged, r.met) {
            (false, _) => "not judged (--quick)",
            (true, true) => "yes",
            (true, false) => "**no**",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {met} |\n",
            r.what, r.measured, r.limit
        ));
    }
    out
}

/// Replaces the section between the markers (or appends one).
fn write_section(table: &str) -> Result<()> {
    let date = util::capture(Command::new("date").args(["-u", "+%Y-%m-%d"]))?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "{BEGIN}\nMeasured {} on {cores} cores, local disk, release build, each command a \
         fresh `reef` process (`xtask/src/limits.rs`):\n\n{}\n{END}",
        date.trim(),
        table.trim_end()
    );
    let path = util::root().join("docs/benchmarks.md");
    let doc = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let updated = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &doc[..b], &doc[e + END.len()..]),
        _ => format!("{}\n\n{section}\n", doc.trim_end()),
    };
    fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote the limits table into {}", path.display());
    Ok(())
}
