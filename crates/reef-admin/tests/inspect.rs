//! `reef inspect <key>`: every object kind dumps as JSON with its decoded
//! fields; a damaged object is refused with the reason (exit 65) naming
//! it; a missing key exits 1, a key that is not Reef's exits 2.

mod common;

use common::{TempDir, reef, upsert, write};
use serde_json::json;

const NS: &str = "orders";

fn file_under(dir: &TempDir, sub: &str) -> String {
    let root = dir.path().join("ns").join(NS).join(sub);
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    format!("ns/{NS}/{sub}/{}", names.last().unwrap())
}

#[test]
fn every_kind_dumps_and_damage_is_refused() {
    let dir = TempDir::new("inspect");
    let s = dir.store();
    write(
        s,
        NS,
        &[upsert("a", json!({"n": 1})), upsert("b", json!({"n": 2}))],
    )
    .ok_json();
    assert_eq!(reef(s, &["flush", NS], "").code, Some(0));
    write(s, NS, &[upsert("c", json!({"n": 3}))]).ok_json();

    let head = reef(s, &["inspect", &format!("ns/{NS}/HEAD")], "").ok_json();
    assert_eq!(
        (head["kind"].as_str(), head["manifest_version"].as_u64()),
        (Some("head"), Some(1))
    );

    let manifest_key = file_under(&dir, "manifest");
    let m = reef(s, &["inspect", &manifest_key], "").ok_json();
    assert_eq!(m["kind"], "manifest");
    assert_eq!(m["last_applied_lsn"], 1);
    assert_eq!(m["segments"].as_array().unwrap().len(), 1);
    assert_eq!(m["totals"]["live_count"], 2);

    let wal = reef(s, &["inspect", &file_under(&dir, "wal")], "").ok_json();
    assert_eq!(
        (wal["kind"].as_str(), wal["lsn"].as_u64()),
        (Some("wal"), Some(2))
    );
    assert_eq!(wal["first_entries"][0]["doc"], json!({"n": 3}));

    let seg = reef(s, &["inspect", &file_under(&dir, "seg")], "").ok_json();
    assert_eq!(seg["kind"], "segment");
    assert_eq!(seg["entries"], 2);
    assert_eq!(seg["first_entries"][1]["id"], "b");
    assert_eq!(seg["setsum"], m["segments"][0]["setsum"]);

    // A flipped byte: refused, naming the object.
    let path = dir.path().join(&manifest_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let damaged = reef(s, &["inspect", &manifest_key], "");
    assert_eq!(damaged.code, Some(65), "{damaged:?}");
    assert!(damaged.error_line().contains(&manifest_key), "{damaged:?}");

    let missing = reef(
        s,
        &["inspect", &format!("ns/{NS}/wal/00000000000000000099.wal")],
        "",
    );
    assert_eq!(missing.code, Some(1), "{missing:?}");
    let foreign = reef(s, &["inspect", "not/reef"], "");
    assert_eq!(foreign.code, Some(2), "{foreign:?}");
}
