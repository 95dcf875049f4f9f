//! `reef checkpoint create|list|delete`, reads `--at` a checkpoint, and
//! `reef lease list|release`: a checkpoint covers every write acknowledged
//! before it (create folds first); later writes do not show through it;
//! names that exist or do not are conflicts (exit 3) and not-founds
//! (exit 1).

mod common;

use common::{TempDir, reef, scan, upsert, write};
use serde_json::json;

const NS: &str = "orders";

#[test]
fn checkpoints_pin_what_was_acknowledged_before_them() {
    let dir = TempDir::new("checkpoints");
    let s = dir.store();
    write(
        s,
        NS,
        &[upsert("a", json!({"n": 1})), upsert("b", json!({"n": 1}))],
    )
    .ok_json();
    // Unfolded when the checkpoint is taken: it must still be covered.
    write(s, NS, &[upsert("c", json!({"n": 1}))]).ok_json();
    let created = reef(s, &["checkpoint", "create", NS, "nightly"], "").ok_json();
    assert_eq!(created["name"], "nightly");
    assert_eq!(created["last_version"], 3);

    write(
        s,
        NS,
        &[upsert("a", json!({"n": 2})), upsert("d", json!({"n": 2}))],
    )
    .ok_json();
    let then = reef(s, &["get", NS, "a", "--at", "nightly"], "").ok_json();
    assert_eq!(then["doc"], json!({"n": 1}));
    let now = reef(s, &["get", NS, "a"], "").ok_json();
    assert_eq!(now["doc"], json!({"n": 2}));
    let ids = |docs: Vec<serde_json::Value>| -> Vec<String> {
        docs.iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(scan(s, NS, &["--at", "nightly"])), ["a", "b", "c"]);
    assert_eq!(ids(scan(s, NS, &[])), ["a", "b", "c", "d"]);
    let absent_then = reef(s, &["get", NS, "d", "--at", "nightly"], "");
    assert_eq!(absent_then.code, Some(1), "{absent_then:?}");

    let listed = reef(s, &["checkpoint", "list", NS], "").ok_lines();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "nightly");
    let again = reef(s, &["checkpoint", "create", NS, "nightly"], "");
    assert_eq!(
        again.code,
        Some(3),
        "a name in use is a conflict: {again:?}"
    );
    let missing = reef(s, &["get", NS, "a", "--at", "weekly"], "");
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(missing.error_line().contains("weekly"), "{missing:?}");
    let bad = reef(s, &["checkpoint", "create", NS, "bad name"], "");
    assert_eq!(bad.code, Some(2), "{bad:?}");

    reef(s, &["checkpoint", "delete", NS, "nightly"], "").ok_json();
    assert!(
        reef(s, &["checkpoint", "list", NS], "")
            .ok_lines()
            .is_empty()
    );
    let gone = reef(s, &["checkpoint", "delete", NS, "nightly"], "");
    assert_eq!(gone.code, Some(1), "{gone:?}");

    assert!(reef(s, &["lease", "list", NS], "").ok_lines().is_empty());
    let no_lease = reef(s, &["lease", "release", NS, "0123"], "");
    assert_eq!(no_lease.code, Some(1), "{no_lease:?}");
    let no_ns = reef(s, &["checkpoint", "list", "nope"], "");
    assert_eq!(no_ns.code, Some(1), "{no_ns:?}");
}
