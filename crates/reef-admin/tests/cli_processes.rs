//! Many `reef` processes on one local namespace: concurrent writers all
//! succeed with dense versions, and a writer killed with SIGKILL at any
//! moment leaves its request either wholly visible or not at all, while
//! every acknowledged request survives.
#![allow(
    clippy::disallowed_methods,
    reason = "real processes are timed and killed on real time"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{REEF, TempDir, reef, scan, upsert, write};
use serde_json::{Value, json};

const NS: &str = "shared";

#[test]
fn concurrent_writer_processes_all_commit_with_dense_versions() {
    let dir = TempDir::new("concurrent");
    let store = dir.store().to_owned();
    let writers: Vec<_> = (0..4)
        .map(|p| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|k| {
                        let line = json!({"op": "upsert", "id": format!("w{p}-{k}"),
                                          "doc": {"p": p, "k": k}, "if": "absent"});
                        write(&store, NS, &[line.to_string()])
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lsns = Vec::new();
    for writer in writers {
        for run in writer.join().unwrap() {
            let out = run.ok_json();
            assert_eq!(out["upserted"], 1, "{out}");
            assert_eq!(out["first_version"], out["last_version"], "{out}");
            lsns.push(out["lsn"].as_u64().unwrap());
        }
    }
    lsns.sort_unstable();
    assert_eq!(
        lsns,
        (1..=40).collect::<Vec<u64>>(),
        "one WAL object per acknowledged write"
    );

    let docs = scan(&store, NS, &[]);
    assert_eq!(docs.len(), 40);
    let mut versions: Vec<u64> = docs
        .iter()
        .map(|d| d["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=40).collect::<Vec<u64>>(),
        "versions without gaps"
    );
    for doc in &docs {
        let (p, k) = (&doc["doc"]["p"], &doc["doc"]["k"]);
        assert_eq!(doc["id"], format!("w{p}-{k}"));
    }
}

/// For every round in `rounds`, its 5 ids are all visible or none are;
/// acknowledged rounds are all visible.
fn check_all_or_nothing(store: &str, rounds: &BTreeMap<usize, bool>) {
    let run = reef(store, &["scan", NS], "");
    // Every writer may have been killed before its first WAL object
    // landed: then the namespace does not exist yet and nothing is visible.
    let docs = if run.code == Some(1) {
        assert!(run.error_line().contains("does not exist"), "{run:?}");
        Vec::new()
    } else {
        run.ok_lines()
    };
    let mut seen: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for doc in &docs {
        let id = doc["id"].as_str().unwrap();
        let Some((round, _)) = id.strip_prefix('r').and_then(|r| r.split_once('-')) else {
            continue; // not a round's document
        };
        let round: usize = round.parse().unwrap();
        seen.entry(round)
            .or_default()
            .push(doc["version"].as_u64().unwrap());
    }
    for (round, acknowledged) in rounds {
        let versions = seen.get(round).cloned().unwrap_or_default();
        assert!(
            versions.is_empty() || versions.len() == 5,
            "round {round}: half a request is visible: {versions:?}"
        );
        if *acknowledged {
            assert_eq!(
                versions.len(),
                5,
                "round {round} was acknowledged but is gone"
            );
        }
        if !versions.is_empty() {
            let (lo, hi) = (
                versions.iter().min().unwrap(),
                versions.iter().max().unwrap(),
            );
            assert_eq!(
                hi - lo,
                4,
                "round {round}: one request's versions are contiguous"
            );
        }
    }
}

#[test]
fn sigkilled_writers_leave_whole_requests_or_nothing() {
    let dir = TempDir::new("crash");
    let store = dir.store();
    let mut rounds = BTreeMap::new();
    for round in 0..20 {
        let input: Vec<String> = (0..5)
            .map(|k| upsert(&format!("r{round}-{k}"), json!({"round": round, "k": k})))
            .collect();
        let mut child = Command::new(REEF)
            .args(["--store", store, "write", NS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(input.join("\n").as_bytes());
        } // stdin closed: the request is complete
        std::thread::sleep(Duration::from_millis((round as u64 * 7) % 31));
        child.kill().unwrap(); // SIGKILL; a no-op if it already exited
        let out = child.wait_with_output().unwrap();
        // Exit 0 means it printed its result: the write was acknowledged.
        let acknowledged = out.status.success();
        if acknowledged {
            let result: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(result["upserted"], 5, "{result}");
        }
        rounds.insert(round, acknowledged);
        check_all_or_nothing(store, &rounds);
    }
    let acked = rounds.values().filter(|a| **a).count();
    eprintln!(
        "{acked} of {} rounds were acknowledged before the kill",
        rounds.len()
    );

    // The namespace still takes writes and reads after all those kills.
    let out = write(store, NS, &[upsert("after", json!({}))]).ok_json();
    assert_eq!(out["upserted"], 1);
    check_all_or_nothing(store, &rounds);
    assert_eq!(reef(store, &["get", NS, "after"], "").code, Some(0));
}
