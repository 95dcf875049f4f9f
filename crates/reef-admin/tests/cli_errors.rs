//! Every refusal of DESIGN §6: bad `reef write` input, a bad namespace
//! name, a bad store URL and usage errors each exit 2 with a one-line
//! error naming the line and field, and write nothing at all.

mod common;

use common::{TempDir, reef, reef_in, upsert};
use serde_json::json;

const NS: &str = "orders";

/// Writes `input`, expects exit 2 with a first stderr line starting with
/// `want`, and checks that nothing was written.
fn refused(input: &str, want: &str) {
    let dir = TempDir::new("refused");
    let run = reef(dir.store(), &["write", NS], input);
    assert_eq!(run.code, Some(2), "{input:?}: {run:?}");
    assert!(
        run.error_line().starts_with(want),
        "{input:?}: wanted {want:?}, got {:?}",
        run.error_line()
    );
    assert_eq!(run.stdout, "", "nothing printed on stdout");
    assert!(!dir.has_wal(NS), "{input:?}: a WAL object was written");
    assert!(dir.files().is_empty(), "{input:?}: {:?}", dir.files());
    // Nothing written: the namespace does not even exist.
    assert_eq!(reef(dir.store(), &["stats", NS], "").code, Some(1));
}

#[test]
fn malformed_json_names_the_line() {
    refused(
        "{\"op\":\"upsert\",\"id\":\"u1\",\"doc\":{",
        "error: line 1: malformed JSON at column",
    );
    refused("[1,2]", "error: line 1: expected a JSON object");
}

#[test]
fn unknown_op() {
    refused(
        r#"{"op":"upsrt","id":"u1","doc":{}}"#,
        r#"error: line 1: field "op": unknown op "upsrt" (expected upsert, patch or delete)"#,
    );
    refused(
        r#"{"op":7,"id":"u1","doc":{}}"#,
        r#"error: line 1: field "op": must be a string, found a number"#,
    );
}

#[test]
fn missing_id() {
    refused(
        r#"{"op":"upsert","doc":{}}"#,
        r#"error: line 1: field "id": missing"#,
    );
    refused(
        r#"{"op":"delete","id":""}"#,
        r#"error: line 1: field "id": id is empty"#,
    );
}

#[test]
fn missing_doc_for_upsert_and_patch() {
    refused(
        r#"{"op":"upsert","id":"u1"}"#,
        r#"error: line 1: field "doc": missing (upsert needs a doc)"#,
    );
    refused(
        r#"{"op":"patch","id":"u1"}"#,
        r#"error: line 1: field "doc": missing (patch needs a doc)"#,
    );
    refused(
        r#"{"op":"delete","id":"u1","doc":{}}"#,
        r#"error: line 1: field "doc": delete takes no doc"#,
    );
}

#[test]
fn doc_not_an_object() {
    refused(
        r#"{"op":"upsert","id":"u1","doc":[1]}"#,
        r#"error: line 1: field "doc": must be a JSON object, found"#,
    );
    refused(
        r#"{"op":"upsert","id":"u1","doc":{"n":18446744073709551615}}"#,
        r#"error: line 1: field "doc.n": integer 18446744073709551615 is outside the 64-bit signed range"#,
    );
}

#[test]
fn unknown_field() {
    refused(
        r#"{"op":"upsert","id":"u1","doc":{},"colour":"red"}"#,
        r#"error: line 1: field "colour": unknown field"#,
    );
}

#[test]
fn bad_if_value() {
    for bad in [
        r#""maybe""#,
        r#"{"version":-1}"#,
        r#"{"version":1,"x":2}"#,
        "null",
        "3",
    ] {
        refused(
            &format!(r#"{{"op":"delete","id":"u1","if":{bad}}}"#),
            r#"error: line 1: field "if": expected "absent", "exists" or {"version": N}"#,
        );
    }
}

#[test]
fn oversize_id() {
    let id = "x".repeat(1025);
    refused(
        &upsert(&id, json!({})),
        r#"error: line 1: field "id": id is 1025 bytes, limit is 1024"#,
    );
}

#[test]
fn oversize_doc() {
    let big = "y".repeat((2 << 20) + 1);
    refused(
        &upsert("u1", json!({ "blob": big })),
        r#"error: line 1: field "doc": encoded document is"#,
    );
}

#[test]
fn empty_input() {
    refused("", "error: input: no ops");
    refused("\n  \n\r\n", "error: input: no ops");
}

#[test]
fn a_bad_line_after_good_ones_writes_nothing() {
    let input = [
        upsert("u1", json!({"n": 1})),
        String::new(),
        upsert("u2", json!({"n": 2})),
        r#"{"op":"upsert","id":"u3","doc":"not an object"}"#.to_owned(),
    ]
    .join("\n");
    refused(
        &input,
        r#"error: line 4: field "doc": must be a JSON object"#,
    );
}

#[test]
fn bad_idempotency_key() {
    let dir = TempDir::new("key");
    let key = "k".repeat(257);
    let run = reef(
        dir.store(),
        &["write", NS, "--idempotency-key", &key],
        &upsert("u1", json!({})),
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.error_line()
            .starts_with("error: --idempotency-key: 257 bytes"),
        "{run:?}"
    );
    assert!(dir.files().is_empty());
}

#[test]
fn bad_namespace_name() {
    let dir = TempDir::new("badns");
    let run = reef(dir.store(), &["write", "Bad/NS"], &upsert("u1", json!({})));
    assert_eq!(run.code, Some(2), "{run:?}");
    let line = run.error_line();
    assert!(
        line.starts_with("error: ") && line.contains("namespace") && line.contains("Bad/NS"),
        "{line}"
    );
    assert!(dir.files().is_empty(), "{:?}", dir.files());
    for args in [
        ["get", "..", "x"].as_slice(),
        &["scan", "a..b"],
        &["stats", ""],
    ] {
        let run = reef(dir.store(), args, "");
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.error_line().contains("namespace"), "{run:?}");
    }
}

#[test]
fn bad_store_url() {
    let cwd = TempDir::new("badurl");
    let run = reef_in(
        Some(cwd.path()),
        "ftp://x",
        &["write", NS],
        &upsert("u1", json!({})),
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.error_line()
            .starts_with("error: invalid store URL \"ftp://x\""),
        "{run:?}"
    );
    assert!(
        cwd.files().is_empty(),
        "nothing written, not even ./reef-data"
    );
}

#[test]
fn unreadable_file() {
    let dir = TempDir::new("nofile");
    let missing = dir.path().join("missing.jsonl");
    let run = reef(
        dir.store(),
        &["write", NS, "--file", missing.to_str().unwrap()],
        "",
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.error_line().starts_with("error: --file "), "{run:?}");
    assert!(!dir.has_wal(NS));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = TempDir::new("usage");
    for args in [
        ["bogus"].as_slice(),
        &["get", NS],
        &["scan", NS, "--limit", "many"],
        &["write"],
        &["stats", NS, "--nope"],
    ] {
        let run = reef(dir.store(), args, "");
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains("error"), "{run:?}");
    }
    for args in [["--help"].as_slice(), &["write", "--help"], &["--version"]] {
        let run = reef(dir.store(), args, "");
        assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
        assert!(!run.stdout.is_empty());
    }
    assert!(dir.files().is_empty());
}
