//! `reef demo`, the README's first command, works on a fresh directory,
//! builds on its own earlier runs, refuses a bad store URL clearly, and
//! exits quietly when its reader goes away.

use std::io::Read;
use std::process::{Command, Stdio};

const REEF: &str = env!("CARGO_BIN_EXE_reef");

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("reef-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn demo(dir: &std::path::Path) -> String {
    let out = Command::new(REEF)
        .args(["--store", dir.to_str().unwrap(), "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_runs_twice_on_one_bucket() {
    let dir = temp_dir("demo");
    let first = demo(&dir);
    assert!(
        first.contains("ns/demo/wal/00000000000000000001.wal"),
        "{first}"
    );
    assert!(
        first.contains("a second writer trying lsn 1: ConditionFailed"),
        "{first}"
    );
    assert!(
        first.contains(r#"get user/grace -> version 3 {"born":1906,"name":"Grace Hopper"}"#),
        "{first}"
    );
    assert!(first.contains("checksum mismatch"), "{first}");
    assert!(dir.join("ns/demo/HEAD").exists());

    let second = demo(&dir);
    assert!(second.contains("manifest 2 commits it"), "{second}");
    assert!(second.contains("get user/grace -> version 6"), "{second}");
    assert!(
        second.contains("manifest 2 with 2 segment(s), last_applied_lsn 2"),
        "{second}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_store_url_is_a_clear_error() {
    let out = Command::new(REEF)
        .args(["--store", "ftp://nowhere", "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad input exits 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or("")
            .contains("ftp://nowhere"),
        "{stderr}"
    );
}

#[test]
fn closed_stdout_is_not_a_crash() {
    let dir = temp_dir("pipe");
    let mut child = Command::new(REEF)
        .args(["--store", dir.to_str().unwrap(), "demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then drop: reader gone
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
    let _ = std::fs::remove_dir_all(&dir);
}
