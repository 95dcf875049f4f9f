//! The `reef` data commands as DESIGN §6 specifies them, driven through
//! the binary: write results field by field, get, scan bounds, patch and
//! delete semantics, stats, namespaces, preconditions (exit 3, nothing
//! applied), idempotent retries, and a reader that closes stdout early.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{REEF, TempDir, reef, scan, stats, upsert, write};
use serde_json::{Value, json};

const NS: &str = "orders";

fn ids(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["id"].as_str().unwrap()).collect()
}

#[test]
fn write_prints_exactly_the_result_object() {
    let dir = TempDir::new("write");
    let out = write(
        dir.store(),
        NS,
        &[
            upsert("u1", json!({"name": "ada"})),
            upsert("u2", json!({"name": "alan"})),
            r#"{"op":"delete","id":"ghost"}"#.to_owned(),
        ],
    )
    .ok_json();
    assert_eq!(
        out,
        json!({"lsn": 1, "first_version": 1, "last_version": 2, "upserted": 2,
               "patched": 0, "deleted": 0, "skipped": 1, "replayed": false})
    );
    // A request that changes nothing has no versions.
    let run = reef(
        dir.store(),
        &["write", NS, "--json"],
        r#"{"op":"patch","id":"nobody","doc":{}}"#,
    );
    let out = run.ok_json();
    assert_eq!(out["first_version"], Value::Null, "{out}");
    assert_eq!(out["last_version"], Value::Null, "{out}");
    assert_eq!(
        (out["skipped"].clone(), out["replayed"].clone()),
        (json!(1), json!(false))
    );

    // --file reads the same format.
    let file = dir.path().join("ops.jsonl");
    std::fs::write(&file, upsert("u3", json!({"n": 3})) + "\n").unwrap();
    let out = reef(
        dir.store(),
        &["write", NS, "--file", file.to_str().unwrap()],
        "",
    )
    .ok_json();
    assert_eq!(
        (out["upserted"].clone(), out["first_version"].clone()),
        (json!(1), json!(3))
    );
}

#[test]
fn get_prints_the_document_and_exits_1_when_absent() {
    let dir = TempDir::new("get");
    let doc = json!({"name": "ada", "born": 1815, "tags": ["math"], "ok": true, "f": 1.5,
                     "b": {"$bytes": "AAE="}});
    write(dir.store(), NS, &[upsert("user/ada", doc.clone())]).ok_json();
    let got = reef(dir.store(), &["get", NS, "user/ada"], "").ok_json();
    assert_eq!(got, json!({"id": "user/ada", "version": 1, "doc": doc}));

    let missing = reef(dir.store(), &["get", NS, "user/nobody"], "");
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert_eq!(missing.stdout, "");
    assert!(missing.error_line().contains("user/nobody"), "{missing:?}");
    // A namespace nobody wrote is empty, not an error.
    assert_eq!(reef(dir.store(), &["get", "empty", "x"], "").code, Some(1));
}

#[test]
fn scan_honours_from_to_prefix_and_limit() {
    let dir = TempDir::new("scan");
    let all = ["a", "b/1", "b/2", "b/3", "c"];
    let lines: Vec<String> = all
        .iter()
        .rev()
        .map(|id| upsert(id, json!({"id": id})))
        .collect();
    write(dir.store(), NS, &lines).ok_json();
    let s = dir.store();
    assert_eq!(ids(&scan(s, NS, &[])), all);
    assert_eq!(ids(&scan(s, NS, &["--from", "b/2"])), ["b/2", "b/3", "c"]);
    assert_eq!(ids(&scan(s, NS, &["--to", "b/2"])), ["a", "b/1"]);
    assert_eq!(
        ids(&scan(s, NS, &["--prefix", "b/"])),
        ["b/1", "b/2", "b/3"]
    );
    assert_eq!(ids(&scan(s, NS, &["--limit", "2"])), ["a", "b/1"]);
    assert_eq!(
        ids(&scan(
            s,
            NS,
            &["--prefix", "b/", "--from", "b/2", "--limit", "1"]
        )),
        ["b/2"]
    );
    assert_eq!(
        ids(&scan(s, NS, &["--from", "b/1", "--to", "b/3", "--json"])),
        ["b/1", "b/2"]
    );
    assert!(scan(s, NS, &["--limit", "0"]).is_empty());
    let docs = scan(s, NS, &[]);
    assert_eq!(
        docs[0],
        json!({"id": "a", "version": 5, "doc": {"id": "a"}})
    );
    // A namespace never written does not exist: exit 1, naming it.
    let missing = reef(s, &["scan", "never-written"], "");
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(
        missing
            .error_line()
            .contains("\"never-written\" does not exist")
    );
}

#[test]
fn patch_merges_and_delete_removes() {
    let dir = TempDir::new("patch");
    let s = dir.store();
    let doc = json!({"name": "ada", "age": 36, "tags": {"a": 1, "b": 2}});
    write(s, NS, &[upsert("u1", doc)]).ok_json();
    let patch = json!({"op": "patch", "id": "u1", "if": {"version": 1},
                       "doc": {"age": null, "tags": {"b": null, "c": 3}, "new": "x"}});
    let out = write(s, NS, &[patch.to_string()]).ok_json();
    assert_eq!(
        (out["patched"].clone(), out["first_version"].clone()),
        (json!(1), json!(2))
    );
    let got = reef(s, &["get", NS, "u1"], "").ok_json();
    assert_eq!(
        got,
        json!({"id": "u1", "version": 2, "doc": {"name": "ada", "tags": {"a": 1, "c": 3}, "new": "x"}})
    );

    let out = write(
        s,
        NS,
        &[r#"{"op":"delete","id":"u1","if":"exists"}"#.to_owned()],
    )
    .ok_json();
    assert_eq!(
        (out["deleted"].clone(), out["last_version"].clone()),
        (json!(1), json!(3))
    );
    assert_eq!(reef(s, &["get", NS, "u1"], "").code, Some(1));
    assert!(scan(s, NS, &[]).is_empty());
    // Ops see earlier ops of the same request.
    let out = write(
        s,
        NS,
        &[
            upsert("u2", json!({"n": 1})),
            r#"{"op":"patch","id":"u2","doc":{"m":2},"if":"exists"}"#.to_owned(),
            r#"{"op":"delete","id":"u2","if":{"version":5}}"#.to_owned(),
        ],
    )
    .ok_json();
    assert_eq!(out["upserted"], 1);
    assert_eq!(out["patched"], 1);
    assert_eq!(out["deleted"], 1);
    assert_eq!(
        (out["first_version"].clone(), out["last_version"].clone()),
        (json!(4), json!(6))
    );
}

#[test]
fn stats_reports_the_namespace() {
    let dir = TempDir::new("stats");
    let s = dir.store();
    let missing = reef(s, &["stats", NS], "");
    assert_eq!(missing.code, Some(1), "no namespace yet: {missing:?}");
    write(
        s,
        NS,
        &[upsert("a", json!({"n": 1})), upsert("b", json!({"n": 2}))],
    )
    .ok_json();
    write(s, NS, &[upsert("c", json!({"n": 3}))]).ok_json();
    let st = stats(s, NS);
    for field in ["manifest_version", "last_applied_lsn", "gc_floor"] {
        assert!(st[field].is_u64(), "{field}: {st}");
    }
    assert_eq!(st["namespace"], NS);
    assert_eq!(st["last_lsn"], 2);
    assert_eq!(st["last_version"], 3);
    assert_eq!(
        st["wal_objects"].as_u64().unwrap(),
        2 - st["last_applied_lsn"].as_u64().unwrap()
    );
    assert!(st["segments"].is_object(), "{st}");
    assert!(st["bytes"].as_u64().unwrap() > 0, "{st}");
    assert!(st["memtable_bytes"].is_u64(), "{st}");
}

/// Plain names, one per line (`while read ns` loops), or JSON strings
/// with `--json`.
#[test]
fn namespaces_lists_one_name_per_line() {
    let dir = TempDir::new("namespaces");
    let s = dir.store();
    assert_eq!(reef(s, &["namespaces"], "").ok_lines(), Vec::<Value>::new());
    for ns in ["users.v2", "orders", "a-b_c"] {
        write(s, ns, &[upsert("x", json!({}))]).ok_json();
    }
    let run = reef(s, &["namespaces"], "");
    assert_eq!(run.stdout, "a-b_c\norders\nusers.v2\n");
    let run = reef(s, &["namespaces", "--json"], "");
    assert_eq!(run.stdout, "\"a-b_c\"\n\"orders\"\n\"users.v2\"\n");
}

#[test]
fn failed_precondition_exits_3_and_applies_nothing() {
    let dir = TempDir::new("precondition");
    let s = dir.store();
    write(s, NS, &[upsert("u1", json!({"n": 1}))]).ok_json();
    let run = write(
        s,
        NS,
        &[
            upsert("u2", json!({"n": 2})),
            String::new(),
            r#"{"op":"upsert","id":"u1","doc":{"n":9},"if":"absent"}"#.to_owned(),
        ],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    let line = run.error_line();
    for part in [
        "ops[1]",
        "\"u1\"",
        "expected absent",
        "version 1",
        "input line 3",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert_eq!(run.stdout, "");
    let run = write(
        s,
        NS,
        &[r#"{"op":"patch","id":"u1","doc":{},"if":{"version":7}}"#.to_owned()],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.error_line().contains("expected version 7"), "{run:?}");

    // Nothing of either request applied.
    assert_eq!(reef(s, &["get", NS, "u2"], "").code, Some(1));
    let got = reef(s, &["get", NS, "u1"], "").ok_json();
    assert_eq!(got, json!({"id": "u1", "version": 1, "doc": {"n": 1}}));
    assert_eq!(stats(s, NS)["last_lsn"], 1);
}

#[test]
fn idempotent_retry_replays_and_reuse_conflicts() {
    let dir = TempDir::new("idempotency");
    let s = dir.store();
    let ops = [upsert("a", json!({"n": 1})), upsert("b", json!({"n": 2}))].join("\n");
    let args = ["write", NS, "--idempotency-key", "k1"];
    let first = reef(s, &args, &ops).ok_json();
    assert_eq!(first["replayed"], false);
    let lsn = stats(s, NS)["last_lsn"].clone();

    let second = reef(s, &args, &ops).ok_json();
    assert_eq!(second["replayed"], true, "{second}");
    for field in [
        "lsn",
        "first_version",
        "last_version",
        "upserted",
        "patched",
        "deleted",
        "skipped",
    ] {
        assert_eq!(first[field], second[field], "{field}");
    }
    assert_eq!(stats(s, NS)["last_lsn"], lsn, "a replay writes nothing");

    let other = reef(s, &args, &upsert("a", json!({"n": 99})));
    assert_eq!(other.code, Some(3), "{other:?}");
    assert!(other.error_line().contains("\"k1\""), "{other:?}");
    assert_eq!(stats(s, NS)["last_lsn"], lsn);
    assert_eq!(
        reef(s, &["get", NS, "a"], "").ok_json()["doc"],
        json!({"n": 1})
    );
}

#[test]
fn closed_stdout_ends_scan_quietly() {
    let dir = TempDir::new("pipe");
    // Far more output than a pipe buffers, so scan is still writing when
    // its reader goes away.
    let lines: Vec<String> = (0..3000)
        .map(|i| upsert(&format!("doc/{i:05}"), json!({"pad": "p".repeat(100)})))
        .collect();
    write(dir.store(), NS, &lines).ok_json();
    let mut child = Command::new(REEF)
        .args(["--store", dir.store(), "scan", NS])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // the reader is dropped here: `| head -1`
    assert!(first.contains("\"doc/00000\""), "{first}");
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status:?} {stderr}");
}

/// A segment with one byte appended is not the segment the manifest
/// recorded: reads refuse it as corruption (exit 65) and name the object.
#[test]
fn a_segment_with_a_byte_appended_is_corruption() {
    let dir = TempDir::new("appended");
    let s = dir.store();
    write(s, NS, &[upsert("a", json!({"n": 1}))]).ok_json();
    let flushed = reef(s, &["flush", NS], "");
    assert_eq!(flushed.code, Some(0), "{flushed:?}");
    assert_eq!(reef(s, &["get", NS, "a"], "").ok_json()["doc"]["n"], 1);
    let segment = dir
        .files()
        .into_iter()
        .find(|f| f.starts_with(format!("ns/{NS}/seg")))
        .expect("flush wrote a segment");
    let path = dir.path().join(&segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, bytes).unwrap();
    let got = reef(s, &["get", NS, "a"], "");
    assert_eq!(got.code, Some(65), "{got:?}");
    assert!(
        got.stderr.contains("hint: stored data is damaged"),
        "{got:?}"
    );
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(got.error_line().contains(name), "{got:?}");
}
