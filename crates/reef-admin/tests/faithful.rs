//! Issue #14, "faithful at the edges", from outside the binary: numbers come
//! back exactly as written; duplicate keys are refused; an endless input
//! stops at a limit in bounded time and memory with nothing written;
//! commands on a namespace that does not exist say so (exit 1); readers
//! paused mid-run while writers go on never report a false WAL hole.
#![allow(
    clippy::disallowed_methods,
    reason = "real processes are timed and killed on real time"
)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{REEF, TempDir, reef, upsert};

#[test]
fn numbers_come_back_exactly_as_written() {
    let dir = TempDir::new("numbers");
    // Text in, text out: each value must read back as the same double (the
    // same text, in shortest round-trip form) or the same integer.
    let cases = [
        ("f1", "90.28571428571429"),
        ("f2", "-0.0"),
        ("f3", "5e-324"),
        ("f4", "2.2250738585072014e-308"),
        ("f5", "1.7976931348623157e308"),
        ("f6", "0.1"),
        ("f7", "1e21"),
        ("f8", "123456789.12345679"),
        ("i1", "-9223372036854775808"),
        ("i2", "9223372036854775807"),
        ("i3", "0"),
    ];
    let fields: Vec<String> = cases.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    let line = format!(
        r#"{{"op":"upsert","id":"n","doc":{{{}}}}}"#,
        fields.join(",")
    );
    assert_eq!(reef(dir.store(), &["write", "ns"], &line).code, Some(0));
    for stage in ["unfolded", "folded"] {
        let got = reef(dir.store(), &["get", "ns", "n"], "").ok_json();
        for (k, v) in cases {
            // The printed text (kept exactly by serde_json's
            // `arbitrary_precision`) must be the same number: the same
            // integer, or a float that parses to the same double.
            let printed = got["doc"][k].as_number().unwrap().as_str().to_owned();
            if v.contains(['.', 'e']) {
                let (a, b) = (v.parse::<f64>().unwrap(), printed.parse::<f64>().unwrap());
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{stage}: {k}: wrote {v}, read {printed}"
                );
            } else {
                assert_eq!(printed, v, "{stage}: {k}");
            }
        }
        assert_eq!(reef(dir.store(), &["flush", "ns"], "").code, Some(0));
    }
    // Integers Reef cannot hold exactly are refused, not rounded.
    for big in [
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
    ] {
        let line = format!(r#"{{"op":"upsert","id":"b","doc":{{"v":{big}}}}}"#);
        let r = reef(dir.store(), &["write", "ns"], &line);
        assert_eq!(r.code, Some(2), "{big}: {r:?}");
        assert!(
            r.error_line().contains("line 1: field \"doc.v\""),
            "{big}: {}",
            r.error_line()
        );
    }
}

#[test]
fn duplicate_keys_are_refused_naming_line_and_key() {
    let dir = TempDir::new("dupes");
    for (input, key) in [
        (
            r#"{"op":"delete","op":"upsert","id":"a","doc":{}}"#,
            "\"op\"",
        ),
        (r#"{"op":"upsert","id":"a","doc":{"x":1,"x":2}}"#, "\"x\""),
    ] {
        let text = format!("{}\n{input}\n", upsert("ok", serde_json::json!({})));
        let r = reef(dir.store(), &["write", "ns"], &text);
        assert_eq!(r.code, Some(2), "{r:?}");
        let first = r.error_line();
        assert!(
            first.contains("line 2") && first.contains(&format!("duplicate key {key}")),
            "{first}"
        );
        assert!(dir.files().is_empty(), "nothing written: {:?}", dir.files());
    }
}

/// Peak resident memory (VmHWM) of a running process, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `reef write` on an endless input fed by `feed`, and returns its
/// exit code, first error line, wall time and the highest peak RSS seen.
fn endless(
    dir: &TempDir,
    args: &[&str],
    feed: Option<&'static [u8]>,
) -> (Option<i32>, String, Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(REEF)
        .arg("--store")
        .arg(dir.store())
        .args(args)
        .stdin(if feed.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(line) = feed {
        let mut stdin = child.stdin.take().unwrap();
        // Like `yes LINE | reef write`: feed until the reader goes away.
        let chunk = line.repeat((64 << 10) / line.len() + 1);
        std::thread::spawn(move || while stdin.write_all(&chunk).is_ok() {});
    }
    let pid = child.id();
    let mut peak = 0;
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        peak = peak.max(peak_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "reef write never stopped");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let first = stderr.lines().next().unwrap_or("").to_owned();
    (status.code(), first, started.elapsed(), peak)
}

#[test]
fn endless_input_stops_at_a_limit_with_bounded_memory_and_writes_nothing() {
    let dir = TempDir::new("endless");
    // One endless line.
    let (code, first, took, peak) = endless(&dir, &["write", "n", "--file", "/dev/zero"], None);
    assert_eq!(code, Some(2), "{first}");
    assert!(first.contains("line 1: longer than"), "{first}");
    eprintln!("/dev/zero: {took:?}, peak {peak} KiB");
    assert!(peak < 1 << 20, "peak RSS {peak} KiB");
    // Endless ops.
    let op: &'static [u8] = b"{\"op\":\"upsert\",\"id\":\"y\",\"doc\":{\"v\":1}}\n";
    let (code, first, took, peak) = endless(&dir, &["write", "n"], Some(op));
    assert_eq!(code, Some(2), "{first}");
    assert!(first.contains("more than 100000 ops"), "{first}");
    eprintln!("endless ops: {took:?}, peak {peak} KiB");
    assert!(peak < 1 << 20, "peak RSS {peak} KiB");
    // Endless blank lines.
    let (code, first, _, peak) = endless(&dir, &["write", "n"], Some(b"\n"));
    assert_eq!(code, Some(2), "{first}");
    assert!(first.contains("lines, most of them blank"), "{first}");
    assert!(peak < 1 << 20, "peak RSS {peak} KiB");
    assert!(dir.files().is_empty(), "nothing written: {:?}", dir.files());
}

#[test]
fn commands_on_a_missing_namespace_say_so() {
    let dir = TempDir::new("missing-ns");
    assert_eq!(
        reef(
            dir.store(),
            &["write", "real"],
            &upsert("a", serde_json::json!({}))
        )
        .code,
        Some(0)
    );
    for args in [
        &["stats", "nons"][..],
        &["scan", "nons"],
        &["get", "nons", "a"],
        &["flush", "nons"],
        &["compact", "nons"],
        &["gc", "nons"],
    ] {
        let r = reef(dir.store(), args, "");
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(
            r.error_line().contains("namespace \"nons\" does not exist"),
            "{args:?}: {}",
            r.error_line()
        );
    }
    // A store directory that does not exist holds no namespace either.
    let r = reef(&format!("{}/nowhere", dir.store()), &["stats", "real"], "");
    assert_eq!(r.code, Some(1), "{r:?}");
    // An existing but empty namespace is not an error.
    assert_eq!(
        reef(dir.store(), &["scan", "real", "--prefix", "zzz"], "").code,
        Some(0)
    );
}

/// Two writer loops and readers that are stopped (SIGSTOP) for a while in
/// the middle of their run: a directory listing taken across concurrent
/// writes is no snapshot, and a gap in it must never be reported as a WAL
/// hole when every object exists.
#[test]
fn paused_readers_beside_writers_see_no_false_wal_hole() {
    let dir = TempDir::new("holes");
    let store = dir.store().to_owned();
    assert_eq!(
        reef(
            &store,
            &["write", "h"],
            &upsert("seed", serde_json::json!({}))
        )
        .code,
        Some(0)
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = reef(
                        &store,
                        &["write", "h"],
                        &upsert(&format!("w{w}-{i}"), serde_json::json!({"i": i})),
                    );
                    assert_eq!(r.code, Some(0), "{r:?}");
                    i += 1;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for n in 0..8u64 {
                    let child = Command::new(REEF)
                        .args(["--store", &store, "scan", "h"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(2 + (t * 7 + n * 3) % 15));
                    let pid = child.id().to_string();
                    let _ = Command::new("kill").args(["-STOP", &pid]).status();
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = Command::new("kill").args(["-CONT", &pid]).status();
                    let out = child.wait_with_output().unwrap();
                    if !out.status.success() {
                        failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} readers failed: {failures:#?}",
        failures.len()
    );
}
