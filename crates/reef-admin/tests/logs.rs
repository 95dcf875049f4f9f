//! Logs (issue #12): the library crates emit `tracing` events; `reef`
//! prints them on stderr, nothing by default, commits and folds with `-v`,
//! whatever `RUST_LOG` asks for when it is set; stdout stays data only.

mod common;

use common::{REEF, TempDir, reef};

fn flush(store: &str, args: &[&str], env: Option<(&str, &str)>) -> (String, String) {
    let mut cmd = std::process::Command::new(REEF);
    cmd.arg("--store")
        .arg(store)
        .args(args)
        .env_remove("RUST_LOG");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn logs_go_to_stderr_as_asked_and_stdout_stays_json() {
    let dir = TempDir::new("logs");
    let s = dir.store();
    let write = |id: &str| {
        let run = reef(
            s,
            &["write", "ns1"],
            &format!("{{\"op\":\"upsert\",\"id\":\"{id}\",\"doc\":{{}}}}"),
        );
        assert_eq!(run.code, Some(0), "{run:?}");
    };

    write("a");
    let (stdout, stderr) = flush(s, &["flush", "ns1"], None);
    assert!(stderr.is_empty(), "quiet by default: {stderr}");
    serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap();

    write("b");
    let (stdout, stderr) = flush(s, &["-v", "flush", "ns1"], None);
    assert!(
        stderr.contains("committed") && stderr.contains("fold") && stderr.contains("ns1"),
        "-v shows the fold's commit with its namespace: {stderr}"
    );
    serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap();

    write("c");
    let (_, stderr) = flush(
        s,
        &["flush", "ns1"],
        Some(("RUST_LOG", "reef_compactor=info")),
    );
    assert!(stderr.contains("committed"), "RUST_LOG alone: {stderr}");
    write("e");
    let (_, stderr) = flush(s, &["-v", "flush", "ns1"], Some(("RUST_LOG", "error")));
    assert!(stderr.is_empty(), "RUST_LOG decides over -v: {stderr}");

    write("d");
    let (_, stderr) = flush(s, &["-q", "flush", "ns1"], None);
    assert!(stderr.is_empty(), "{stderr}");
}
