//! `reef demo`, the README's first command, works on a fresh directory,
//! takes a fresh namespace on each later run, refuses a bad store URL
//! clearly, and exits quietly when its reader goes away.

use std::io::Read;
use std::process::{Command, Stdio};

const REEF: &str = env!("CARGO_BIN_EXE_reef");

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "reef-admin-{tag}-{:016x}",
        reef_manifest::Rng::next_u64(&reef_manifest::SystemRng::new())
    ));
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
    for line in [
        "acknowledged once ns/demo/wal/00000000000000000001.wal was durable: lsn 1, versions 1..=3",
        "replayed: true, lsn 1",
        r#"precondition failed at ops[1] (id "user/ada"): expected absent, found exists at version 1"#,
        "user/linus present: false",
        r#"version 1 -> 4: {"name":"Ada Lovelace","title":"Countess of Lovelace"}"#,
        "checksum mismatch",
        "2 WAL records -> 3 entries in one level-0 segment; manifest 1",
        r#"user/grace v3 {"born":1906,"name":"Grace Hopper"}"#,
        "manifest 1, last_applied_lsn 2, 0 unfolded WAL objects",
    ] {
        assert!(first.contains(line), "missing {line:?} in:\n{first}");
    }
    assert!(dir.join("ns/demo/HEAD").exists());

    // A second run takes a namespace of its own and says which.
    let second = demo(&dir);
    assert!(second.starts_with(r#"Namespace "demo-2""#), "{second}");
    assert!(
        second.contains("ns/demo-2/wal/00000000000000000001.wal"),
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
