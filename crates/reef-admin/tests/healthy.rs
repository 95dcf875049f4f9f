//! The CLI keeps namespaces folded by itself (issue #12): each command is
//! a process of its own, so a write that leaves a namespace at a fold
//! trigger folds it before exiting; a small write leaves the fold to the
//! next trigger (or `reef flush`, or a running `reef compactor`).

mod common;

use common::{TempDir, reef};

/// `n` upserts of documents with a `len`-byte string, as op lines.
fn big_docs(n: usize, len: usize) -> String {
    let body = "x".repeat(len);
    (0..n)
        .map(|i| {
            format!("{{\"op\":\"upsert\",\"id\":\"doc{i}\",\"doc\":{{\"body\":\"{body}\"}}}}\n")
        })
        .collect()
}

#[test]
fn a_write_that_crosses_the_fold_trigger_folds_before_it_exits() {
    let dir = TempDir::new("healthy");
    let s = dir.store();
    // Small: below every trigger, left unfolded.
    let small = reef(s, &["write", "ns1"], &big_docs(3, 100));
    assert_eq!(small.code, Some(0), "{small:?}");
    let stats = reef(s, &["stats", "ns1"], "").ok_json();
    assert_eq!(stats["wal_objects"], 1, "{stats}");
    assert_eq!(stats["manifest_version"], 0, "{stats}");

    // Two writes of 20 documents of 30 KB from separate processes: the
    // first stays under the CLI's 1 MiB fold trigger, the second crosses
    // it (a long-lived engine would wait for 64 MiB; each CLI process
    // replays what is unfolded when it opens the namespace).
    let first = reef(s, &["write", "ns1"], &big_docs(20, 30_000));
    assert_eq!(first.code, Some(0), "{first:?}");
    let stats = reef(s, &["stats", "ns1"], "").ok_json();
    assert_eq!(stats["wal_objects"], 2, "{stats}");
    let big = reef(s, &["write", "ns1"], &big_docs(20, 30_000));
    assert_eq!(big.code, Some(0), "{big:?}");
    assert!(big.stderr.is_empty(), "{big:?}");
    let stats = reef(s, &["stats", "ns1"], "").ok_json();
    assert_eq!(stats["wal_objects"], 0, "folded before exit: {stats}");
    assert!(stats["manifest_version"].as_u64().unwrap() >= 1, "{stats}");
    let doc = reef(s, &["get", "ns1", "doc19"], "").ok_json();
    assert_eq!(doc["doc"]["body"].as_str().unwrap().len(), 30_000);
}
