//! `reef import` (issue #12): JSON lines or a JSON array, ids from a field
//! or a pointer, batched with content-derived idempotency keys; a re-run
//! writes nothing twice; a run killed with SIGKILL and re-run leaves every
//! document exactly once (no document lost, none written twice); a bad
//! document stops the import naming where it is.

#![allow(
    clippy::disallowed_methods,
    reason = "process tests: a real sleep while polling another process"
)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{REEF, TempDir, reef};

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"sku\":\"s{i:06}\",\"n\":{i},\"name\":\"item {i}\"}}\n"))
        .collect()
}

fn import(store: &str, args: &[&str], input: &str) -> common::Run {
    reef(store, &[&["import"], args].concat(), input)
}

fn stats(store: &str) -> serde_json::Value {
    reef(store, &["stats", "ns1"], "").ok_json()
}

#[test]
fn import_lines_and_arrays_and_rerun_writes_nothing_twice() {
    let dir = TempDir::new("import");
    let s = dir.store();
    let run = import(s, &["ns1", "--id-field", "sku"], &lines(2500));
    let summary = run.ok_json();
    assert_eq!(summary["documents"], 2500, "{summary}");
    assert_eq!(summary["batches"], 3, "{summary}");
    assert_eq!(summary["replayed_batches"], 0, "{summary}");
    assert_eq!(stats(s)["last_version"], 2500);
    let doc = reef(s, &["get", "ns1", "s001234"], "").ok_json();
    assert_eq!(doc["doc"]["n"], 1234);

    // The same input again: every batch is a replay, no new version.
    let again = import(s, &["ns1", "--id-field", "sku"], &lines(2500)).ok_json();
    assert_eq!(again["replayed_batches"], 3, "{again}");
    assert_eq!(stats(s)["last_version"], 2500);

    // A JSON array, ids by pointer, from a file.
    let file = dir.path().join("array.json");
    std::fs::write(
        &file,
        r#"[ {"meta": {"sku": "x1"}, "v": 1},
             {"meta": {"sku": "x2"}, "v": [1, 2.5, "z"]} ]"#,
    )
    .unwrap();
    let run = import(
        s,
        &["ns2", file.to_str().unwrap(), "--id-pointer", "/meta/sku"],
        "",
    );
    assert_eq!(run.ok_json()["documents"], 2);
    let doc = reef(s, &["get", "ns2", "x2"], "").ok_json();
    assert_eq!(doc["doc"]["v"][1], 2.5);
}

#[test]
fn a_bad_document_stops_the_import_naming_it() {
    let dir = TempDir::new("import-bad");
    let s = dir.store();
    let input = format!("{}{{\"sku\":\"a\",\"k\":1,\"k\":2}}\n", lines(3));
    let run = import(s, &["ns1", "--id-field", "sku"], &input);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("line 4") && run.stderr.contains("duplicate key"),
        "{run:?}"
    );
    let run = import(s, &["ns1"], &lines(1));
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("no id") && run.stderr.contains("\"id\""),
        "{run:?}"
    );
}

#[test]
fn an_import_killed_midway_and_rerun_has_every_document_once() {
    let dir = TempDir::new("import-kill");
    let s = dir.store();
    let n = 60_000;
    let input = lines(n);
    let mut child = Command::new(REEF)
        .args(["--store", s, "import", "ns1", "--id-field", "sku"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    // Kill it once some batches are in (WAL objects exist), mid-stream.
    let wal = dir.path().join("ns/ns1/wal");
    for _ in 0..2000 {
        if std::fs::read_dir(&wal).map(|d| d.count()).unwrap_or(0) >= 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = feeder.join();
    let before = stats(s)["last_version"].as_u64().unwrap();
    assert!(before > 0 && before < n as u64, "killed midway: {before}");

    let summary = import(s, &["ns1", "--id-field", "sku"], &lines(n)).ok_json();
    assert!(
        summary["replayed_batches"].as_u64().unwrap() > 0,
        "{summary}"
    );
    // Every document once: as many versions as documents, and all there.
    assert_eq!(stats(s)["last_version"], n as u64);
    let scanned = reef(s, &["scan", "ns1"], "").ok_lines();
    assert_eq!(scanned.len(), n);
}
